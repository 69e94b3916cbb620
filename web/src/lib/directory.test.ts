import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  Latest,
  appendPage,
  debounce,
  directoryQuery,
  filterFromUrl,
  isFiltering,
  noMatchText,
  parseSearch,
  urlQuery,
  withTag,
} from './directory';

describe('parseSearch', () => {
  it('takes the first #word as the tag and the rest as text', () => {
    expect(parseSearch('  chess   #blitz  night ')).toEqual({ q: 'chess night', tag: 'blitz' });
    expect(parseSearch('#a #b')).toEqual({ q: '#b', tag: 'a' });
    expect(parseSearch('plain text')).toEqual({ q: 'plain text', tag: '' });
    expect(parseSearch('')).toEqual({ q: '', tag: '' });
  });

  it('keeps a lone # and wildcard characters as text', () => {
    expect(parseSearch('# 100%_')).toEqual({ q: '# 100%_', tag: '' });
  });

  it('cuts text and tag to what the API accepts, counting characters', () => {
    const { q, tag } = parseSearch(`#${'é'.repeat(40)} ${'🎮'.repeat(120)}`);
    expect([...tag].length).toBe(32);
    expect([...q].length).toBe(100);
    expect(q.startsWith('🎮')).toBe(true);
  });
});

describe('withTag', () => {
  it('puts the clicked tag first, replacing a typed one', () => {
    expect(withTag('', 'chess')).toBe('#chess');
    expect(withTag('night #old', 'chess')).toBe('#chess night');
  });
});

describe('directoryQuery', () => {
  it('sends only the filters that are set', () => {
    expect(directoryQuery({ search: '', category: '' }, { offset: 0, limit: 24 }, false)).toEqual({
      offset: 0,
      limit: 24,
    });
    expect(directoryQuery({ search: 'lofi #chill', category: 'Music' }, { offset: 24, limit: 24 }, true)).toEqual({
      offset: 24,
      limit: 24,
      live: true,
      q: 'lofi',
      tag: 'chill',
      category: 'Music',
    });
  });

  it('knows when the visitor is filtering', () => {
    expect(isFiltering({ search: '   ', category: '' })).toBe(false);
    expect(isFiltering({ search: '#x', category: '' })).toBe(true);
    expect(isFiltering({ search: '', category: 'Games' })).toBe(true);
  });
});

describe('urlQuery and filterFromUrl', () => {
  it('round-trip a filter through the address', () => {
    const filter = { search: '#chess blitz night', category: 'Board Games' };
    const query = urlQuery(filter);
    expect(query).toEqual({ q: 'blitz night', tag: 'chess', category: 'Board Games' });
    expect(filterFromUrl(query)).toEqual(filter);
    expect(urlQuery({ search: '  ', category: '' })).toEqual({});
    expect(filterFromUrl({})).toEqual({ search: '', category: '' });
  });

  it('takes the first of repeated parameters and ignores what is not text', () => {
    expect(filterFromUrl({ q: ['a', 'b'], tag: '#x y', category: null })).toEqual({ search: '#x a', category: '' });
  });
});

describe('noMatchText', () => {
  it('names the text, the tag and the category asked for', () => {
    expect(noMatchText({ search: 'blitz', category: '' })).toBe('No channel matches “blitz”.');
    expect(noMatchText({ search: 'blitz #chess', category: 'Games' })).toBe('No channel matches “blitz” #chess in Games.');
    expect(noMatchText({ search: '', category: 'Games' })).toBe('No channel in Games.');
  });
});

describe('appendPage', () => {
  it('appends without repeating an item already shown', () => {
    const a = [{ slug: 'a' }, { slug: 'b' }];
    const next = [{ slug: 'b' }, { slug: 'c' }];
    expect(appendPage(a, next, (c) => c.slug).map((c) => c.slug)).toEqual(['a', 'b', 'c']);
    expect(a.length).toBe(2);
  });
});

describe('Latest', () => {
  it('only the newest ticket is current', () => {
    const latest = new Latest();
    const first = latest.begin();
    expect(latest.isCurrent(first)).toBe(true);
    const second = latest.begin();
    expect(latest.isCurrent(first)).toBe(false);
    expect(latest.isCurrent(second)).toBe(true);
    expect(latest.peek()).toBe(second);
  });
});

describe('debounce', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('calls once after the burst, with the last arguments', () => {
    vi.useFakeTimers();
    const calls: string[] = [];
    const typed = debounce((s: string) => calls.push(s), 250);
    typed('c');
    vi.advanceTimersByTime(100);
    typed('ch');
    vi.advanceTimersByTime(249);
    expect(calls).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(calls).toEqual(['ch']);
  });

  it('drops a pending call on cancel', () => {
    vi.useFakeTimers();
    const calls: number[] = [];
    const typed = debounce((n: number) => calls.push(n), 50);
    typed(1);
    typed.cancel();
    vi.advanceTimersByTime(100);
    expect(calls).toEqual([]);
  });
});
