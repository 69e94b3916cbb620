// The home page's directory search: what the visitor typed, as the query GET /api/v1/channels
// takes, and the paging of its answers. The server does the matching (slug, title, category,
// owner, tags; any case), so these helpers only shape requests and merge pages.

/// What a search box holds, split the way the API filters: the first `#word` is a tag (the
/// API takes one), the rest is free text. A `#` on its own is text.
export interface ParsedSearch {
  q: string;
  tag: string;
}

/// The longest `q` and tag the API accepts (it answers 400 past them).
export const QUERY_MAX = 100;
export const TAG_MAX = 32;

export function parseSearch(input: string): ParsedSearch {
  let tag = '';
  const words: string[] = [];
  for (const word of input.trim().split(/\s+/)) {
    if (!word) continue;
    if (!tag && word.length > 1 && word.startsWith('#')) {
      tag = word.slice(1);
    } else {
      words.push(word);
    }
  }
  // Characters, not UTF-16 units, as the server counts them.
  return { q: [...words.join(' ')].slice(0, QUERY_MAX).join(''), tag: [...tag].slice(0, TAG_MAX).join('') };
}

/// The search box's text for a tag chosen by clicking it: the tag replaces any tag typed.
export function withTag(input: string, tag: string): string {
  const { q } = parseSearch(input);
  return [`#${tag}`, q].filter(Boolean).join(' ');
}

export interface DirectoryFilter {
  search: string;
  category: string;
}

/// The query of one page of GET /api/v1/channels; empty filters are left out.
export function directoryQuery(
  filter: DirectoryFilter,
  page: { offset: number; limit: number },
  live: boolean,
): Record<string, string | number | boolean> {
  const { q, tag } = parseSearch(filter.search);
  const query: Record<string, string | number | boolean> = { offset: page.offset, limit: page.limit };
  if (live) query.live = true;
  if (q) query.q = q;
  if (tag) query.tag = tag;
  if (filter.category) query.category = filter.category;
  return query;
}

/// Whether any filter is set (so "nothing found" is a search result, not an empty server).
export function isFiltering(filter: DirectoryFilter): boolean {
  const { q, tag } = parseSearch(filter.search);
  return q !== '' || tag !== '' || filter.category !== '';
}

/// The home page's address query for a filter (`/?q=…&tag=…&category=…`), so a search can be
/// linked to and survives a reload; empty filters are left out.
export function urlQuery(filter: DirectoryFilter): Record<string, string> {
  const { q, tag } = parseSearch(filter.search);
  const query: Record<string, string> = {};
  if (q) query.q = q;
  if (tag) query.tag = tag;
  if (filter.category) query.category = filter.category;
  return query;
}

/// The filter an address query asks for: the inverse of `urlQuery`. A parameter given twice
/// counts once (its first value).
export function filterFromUrl(query: Record<string, unknown>): DirectoryFilter {
  const one = (v: unknown): string => {
    const first = Array.isArray(v) ? v[0] : v;
    return typeof first === 'string' ? first.trim() : '';
  };
  const tag = one(query.tag).replace(/^#/, '').split(/\s+/)[0] ?? '';
  return {
    search: [tag && `#${tag}`, one(query.q)].filter(Boolean).join(' '),
    category: one(query.category),
  };
}

/// What the page says when a search finds nothing, naming what was asked.
export function noMatchText(filter: DirectoryFilter): string {
  const { q, tag } = parseSearch(filter.search);
  const terms = [q && `“${q}”`, tag && `#${tag}`].filter(Boolean).join(' ');
  if (!terms) return `No channel in ${filter.category}.`;
  return `No channel matches ${terms}${filter.category ? ` in ${filter.category}` : ''}.`;
}

/// `next` appended to `items`, without any item `key` already has: between two pages the
/// list can shift (a channel created, one going live), and a card shown twice would have a
/// duplicate key.
export function appendPage<T>(items: T[], next: T[], key: (item: T) => string): T[] {
  const seen = new Set(items.map(key));
  return items.concat(next.filter((item) => !seen.has(key(item))));
}

/// Hands out a number per request; only the newest one's answer is used, so a slow answer to
/// an old search never replaces a newer one's.
export class Latest {
  private n = 0;

  begin(): number {
    this.n += 1;
    return this.n;
  }

  /// The newest ticket, for work that joins the current request rather than starting anew
  /// (the next page of the same search).
  peek(): number {
    return this.n;
  }

  isCurrent(ticket: number): boolean {
    return ticket === this.n;
  }
}

/// `fn` called once `ms` after the last of a burst of calls (typing), with that call's
/// arguments. `cancel` drops a pending call.
export function debounce<A extends unknown[]>(
  fn: (...args: A) => void,
  ms: number,
): ((...args: A) => void) & { cancel: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const call = (...args: A) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      fn(...args);
    }, ms);
  };
  call.cancel = () => {
    clearTimeout(timer);
    timer = undefined;
  };
  return call;
}
