import { describe, expect, it } from 'vitest';
import { ApiError } from './api';
import {
  commentErrorText,
  isFilteringVideos,
  mayDeleteComment,
  mayEditComment,
  parseTags,
  replaceComment,
  videoFilterFromUrl,
  videosQuery,
  videosUrlQuery,
  type VideoFilter,
} from './videos';

const none: VideoFilter = { search: '', category: '', sort: 'newest' };

describe('videosQuery', () => {
  it('leaves out empty filters and the default order', () => {
    expect(videosQuery(none, { offset: 0, limit: 24 })).toEqual({ offset: 0, limit: 24 });
  });
  it('splits the search into text and a tag and keeps category and sort', () => {
    expect(videosQuery({ search: 'chess #blitz', category: 'games', sort: 'views' }, { offset: 24, limit: 24 })).toEqual({
      offset: 24,
      limit: 24,
      q: 'chess',
      tag: 'blitz',
      category: 'games',
      sort: 'views',
    });
  });
});

describe('videosUrlQuery and videoFilterFromUrl', () => {
  it('round-trip a filter without paging', () => {
    const f: VideoFilter = { search: '#blitz chess night', category: 'games', sort: 'views' };
    const q = videosUrlQuery(f);
    expect(q).toEqual({ q: 'chess night', tag: 'blitz', category: 'games', sort: 'views' });
    expect(videoFilterFromUrl(q)).toEqual(f);
  });
  it('reads an empty or odd address as the default filter', () => {
    expect(videosUrlQuery(none)).toEqual({});
    expect(videoFilterFromUrl({})).toEqual(none);
    expect(videoFilterFromUrl({ sort: 'oldest', q: ['a', 'b'], tag: '#x y' })).toEqual({
      search: '#x a',
      category: '',
      sort: 'newest',
    });
  });
});

describe('isFilteringVideos', () => {
  it('is false for the bare catalogue whatever the order', () => {
    expect(isFilteringVideos(none)).toBe(false);
    expect(isFilteringVideos({ ...none, sort: 'views' })).toBe(false);
    expect(isFilteringVideos({ ...none, search: '  ' })).toBe(false);
  });
  it('is true for text, a tag or a category', () => {
    expect(isFilteringVideos({ ...none, search: 'a' })).toBe(true);
    expect(isFilteringVideos({ ...none, search: '#a' })).toBe(true);
    expect(isFilteringVideos({ ...none, category: 'games' })).toBe(true);
  });
});

describe('parseTags', () => {
  it('splits on commas and spaces, drops # and repeats', () => {
    expect(parseTags(' chess, #Blitz  night,,blitz ')).toEqual(['chess', 'Blitz', 'night']);
    expect(parseTags('')).toEqual([]);
    expect(parseTags('# ,')).toEqual([]);
  });
});

describe('comment permissions', () => {
  const mine = { user_id: 7 };
  const theirs = { user_id: 8 };
  it('lets only the writer edit', () => {
    expect(mayEditComment(mine, { userId: 7, moderates: false })).toBe(true);
    expect(mayEditComment(theirs, { userId: 7, moderates: true })).toBe(false);
    expect(mayEditComment(mine, { userId: null, moderates: false })).toBe(false);
  });
  it('lets the writer and a moderator delete', () => {
    expect(mayDeleteComment(mine, { userId: 7, moderates: false })).toBe(true);
    expect(mayDeleteComment(theirs, { userId: 7, moderates: false })).toBe(false);
    expect(mayDeleteComment(theirs, { userId: 7, moderates: true })).toBe(true);
    expect(mayDeleteComment(theirs, { userId: null, moderates: true })).toBe(false);
  });
});

describe('commentErrorText', () => {
  it('names a rate limit and a ban', () => {
    expect(commentErrorText(new ApiError(429, 'Too Many Requests', 'at most 5 messages per 10s'))).toBe(
      'Slow down: at most 5 messages per 10s',
    );
    expect(commentErrorText(new ApiError(403, 'Forbidden', 'you are banned from this channel'))).toBe(
      'You may not comment here: you are banned from this channel',
    );
  });
  it('prefers the message about the text field', () => {
    expect(
      commentErrorText(new ApiError(422, 'Unprocessable', 'invalid', [{ field: 'text', message: 'at most 2000 characters' }])),
    ).toBe('at most 2000 characters');
  });
  it('says what failed for a network error', () => {
    expect(commentErrorText(new Error('Failed to fetch'))).toBe('Could not send the comment: Failed to fetch');
  });
});

describe('replaceComment', () => {
  const items = [
    { id: 1, text: 'a' },
    { id: 2, text: 'b' },
  ];
  it('replaces an edited comment in place and drops a deleted one', () => {
    expect(replaceComment(items, 2, { id: 2, text: 'B' })).toEqual([
      { id: 1, text: 'a' },
      { id: 2, text: 'B' },
    ]);
    expect(replaceComment(items, 1, null)).toEqual([{ id: 2, text: 'b' }]);
  });
});
