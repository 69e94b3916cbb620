// The videos catalogue's pages: the query GET /api/v1/videos takes for what the visitor typed
// and picked, the address query that keeps a search linkable, and the small rules of the
// video page (who may change a comment, how the API's refusals read). The server does the
// matching and the permission checks; these helpers only shape requests and words.
import { ApiError } from './api';
import { parseSearch } from './directory';

export type VideoSortOrder = 'newest' | 'views';

export interface VideoFilter {
  /// The search box: free text and at most one `#tag`, as on the home page.
  search: string;
  /// A category's slug; empty for all.
  category: string;
  sort: VideoSortOrder;
}

/// The query of one page of GET /api/v1/videos; empty filters and the default order are left out.
export function videosQuery(
  filter: VideoFilter,
  page: { offset: number; limit: number },
): Record<string, string | number> {
  const { q, tag } = parseSearch(filter.search);
  const query: Record<string, string | number> = { offset: page.offset, limit: page.limit };
  if (q) query.q = q;
  if (tag) query.tag = tag;
  if (filter.category) query.category = filter.category;
  if (filter.sort !== 'newest') query.sort = filter.sort;
  return query;
}

/// The page's address query (`/videos?q=…&tag=…&category=…&sort=views`); defaults left out.
export function videosUrlQuery(filter: VideoFilter): Record<string, string> {
  const query: Record<string, string> = {};
  for (const [k, v] of Object.entries(videosQuery(filter, { offset: 0, limit: 0 }))) {
    if (k !== 'offset' && k !== 'limit') query[k] = String(v);
  }
  return query;
}

/// The filter an address query asks for: the inverse of `videosUrlQuery`. An unknown sort is
/// the default one, and a parameter given twice counts once (its first value).
export function videoFilterFromUrl(query: Record<string, unknown>): VideoFilter {
  const one = (v: unknown): string => {
    const first = Array.isArray(v) ? v[0] : v;
    return typeof first === 'string' ? first.trim() : '';
  };
  const tag = one(query.tag).replace(/^#/, '').split(/\s+/)[0] ?? '';
  return {
    search: [tag && `#${tag}`, one(query.q)].filter(Boolean).join(' '),
    category: one(query.category),
    sort: one(query.sort) === 'views' ? 'views' : 'newest',
  };
}

/// Whether any filter is set, so an empty answer is "nothing matches" rather than "no videos yet".
export function isFilteringVideos(filter: VideoFilter): boolean {
  const { q, tag } = parseSearch(filter.search);
  return q !== '' || tag !== '' || filter.category !== '';
}

/// The tags typed in the edit form ("a, b #c"): split on commas and spaces, a leading `#`
/// dropped, repeats (ignoring case) kept once, in the order typed. Longer lists are left to
/// the server to refuse, so the visitor sees its message rather than losing a tag silently.
export function parseTags(input: string): string[] {
  const seen = new Set<string>();
  const tags: string[] = [];
  for (const raw of input.split(/[\s,]+/)) {
    const tag = raw.replace(/^#+/, '');
    if (!tag || seen.has(tag.toLowerCase())) continue;
    seen.add(tag.toLowerCase());
    tags.push(tag);
  }
  return tags;
}

/// Who is looking at a comment: the signed-in account, and whether it may moderate the
/// video (its channel's owner or an admin).
export interface Viewer {
  userId: number | null;
  moderates: boolean;
}

/// Only its writer edits a comment.
export function mayEditComment(comment: { user_id: number }, viewer: Viewer): boolean {
  return viewer.userId !== null && comment.user_id === viewer.userId;
}

/// Its writer, the channel's owner and admins delete a comment.
export function mayDeleteComment(comment: { user_id: number }, viewer: Viewer): boolean {
  return mayEditComment(comment, viewer) || (viewer.userId !== null && viewer.moderates);
}

/// What the comment form says when the API refuses a comment: the chat's rate limit and bans
/// apply to comments, and their detail says which one it was.
export function commentErrorText(e: unknown): string {
  if (!(e instanceof ApiError)) return `Could not send the comment: ${(e as Error).message}`;
  const detail = e.field('text') ?? e.detail ?? e.title;
  switch (e.status) {
    case 401:
      return 'Your sign-in has ended: log in again to comment.';
    case 403:
      return `You may not comment here: ${detail}`;
    case 429:
      return `Slow down: ${detail}`;
    default:
      return detail;
  }
}

/// `items` with the comment `updated` in place of the one with its id (an edit), or without
/// it when `updated` is null (a delete of `id`).
export function replaceComment<T extends { id: number }>(items: T[], id: number, updated: T | null): T[] {
  return updated ? items.map((c) => (c.id === id ? updated : c)) : items.filter((c) => c.id !== id);
}
