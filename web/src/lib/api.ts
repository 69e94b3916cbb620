// The REST API under /api/v1, as the OpenAPI document at /api/openapi.json describes it.
// Errors come back as application/problem+json; `ApiError` keeps its title, detail and the
// per-field messages so forms can show them next to the field.
import { session } from './session';

export interface FieldError {
  field: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string | undefined,
    readonly errors: FieldError[] = [],
  ) {
    super(detail ?? title);
  }

  /// The message for `field`, if the server named it.
  field(name: string): string | undefined {
    return this.errors.find((e) => e.field === name)?.message;
  }
}

export interface Page<T> {
  items: T[];
  total: number;
  offset: number;
  limit: number;
}

export type Role = 'admin' | 'streamer' | 'viewer';

export interface User {
  id: number;
  username: string;
  role: Role;
  banned: boolean;
  created_at: string;
}

export interface TokenResponse {
  access_token: string;
  expires_at: string;
  user: User;
}

export interface PublicLive {
  started_at: string;
  uptime_seconds: number;
  viewers: number;
  video_codec: string | null;
  audio_codec: string | null;
  width: number | null;
  height: number | null;
  play: { flv: string; hls: string | null };
}

export interface PublicChannel {
  slug: string;
  title: string;
  category: string;
  tags: string[];
  owner: string;
  created_at: string;
  live: PublicLive | null;
}

export interface Category {
  name: string;
  channels: number;
}

export interface Channel {
  id: number;
  slug: string;
  title: string;
  owner_id: number;
  category: string;
  tags: string[];
  created_at: string;
  live: boolean;
}

export interface StreamKey {
  jti: string;
  channel_id: number;
  label: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
  expires_at: string | null;
}

export interface IssuedStreamKey extends StreamKey {
  rtmp_url: string;
  stream_key: string;
}

export interface LiveNow {
  channel: string;
  channel_id: number | null;
  started_at: string;
  uptime_seconds: number;
  bitrate_kbps: number;
  fps: number;
  video_codec: string | null;
  audio_codec: string | null;
  width: number | null;
  height: number | null;
  viewers: { rtmp: number; http_flv: number; ws_flv: number; total: number };
  peak_viewers: number;
  bytes_in: number;
  publisher_addr: string;
  key_jti: string | null;
}

export interface Replay {
  id: number;
  channel: string;
  title: string;
  state: 'recording' | 'finished' | 'failed';
  started_at: string;
  ended_at: string | null;
  duration_ms: number;
  size_bytes: number;
  playlist: string | null;
}

export interface Gift {
  id: number;
  name: string;
  price: number;
}

export interface Danmaku {
  id: number;
  user: { id: number; name: string };
  text: string;
  color: string | null;
  mode: string | null;
  offset_ms: number;
  at: string;
}

export interface AuditEntry {
  id: number;
  actor_id: number | null;
  action: string;
  target: string;
  detail: unknown;
  created_at: string;
}

export interface Retention {
  max_age_seconds: number | null;
  max_bytes_per_channel: number | null;
}

export type Visibility = 'public' | 'unlisted' | 'private';

export interface Video {
  id: number;
  channel: string;
  replay_id: number | null;
  title: string;
  description: string;
  category: string | null;
  tags: string[];
  visibility: Visibility;
  duration_ms: number;
  size_bytes: number;
  video_codec: string | null;
  audio_codec: string | null;
  width: number | null;
  height: number | null;
  thumbnail: string | null;
  view_count: number;
  created_at: string;
  playlist: string | null;
}

export interface VideoPatch {
  title?: string;
  description?: string;
  category?: string;
  tags?: string[];
  visibility?: Visibility;
}

export interface VideoCategory {
  id: number;
  slug: string;
  name: string;
}

export interface Comment {
  id: number;
  video_id: number;
  user_id: number;
  username: string;
  parent_id: number | null;
  text: string;
  created_at: string;
  edited_at: string | null;
  reply_count: number;
}

type Query = Record<string, string | number | boolean | undefined | null>;

function url(path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  }
  const qs = params.toString();
  return `/api/v1${path}${qs ? `?${qs}` : ''}`;
}

export async function request<T>(
  method: string,
  path: string,
  opts: { body?: unknown; query?: Query; auth?: boolean } = {},
): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  const token = session.token;
  if (token && opts.auth !== false) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(url(path, opts.query), {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  const json = text ? JSON.parse(text) : undefined;
  if (!res.ok) {
    // A token that expired or was ended elsewhere: sign out here too, so the header shows it.
    if (res.status === 401 && token) session.clear();
    throw new ApiError(res.status, json?.title ?? res.statusText, json?.detail, json?.errors ?? []);
  }
  return json as T;
}

export const api = {
  login: (username: string, password: string) =>
    request<TokenResponse>('POST', '/auth/login', { body: { username, password }, auth: false }),
  register: (username: string, password: string) =>
    request<User>('POST', '/auth/register', { body: { username, password }, auth: false }),
  logout: () => request<void>('POST', '/auth/logout'),
  me: () => request<User>('GET', '/auth/me'),

  directory: (query: Query) => request<Page<PublicChannel>>('GET', '/channels', { query }),
  categories: (query: Query = {}) => request<Page<Category>>('GET', '/categories', { query }),
  channel: (slug: string) => request<PublicChannel>('GET', `/channels/${slug}`),
  channelReplays: (slug: string, query: Query = {}) =>
    request<Page<Replay>>('GET', `/channels/${slug}/replays`, { query }),
  recentReplays: (query: Query = {}) => request<Page<Replay>>('GET', '/replays', { query }),
  replay: (id: number) => request<Replay>('GET', `/replays/${id}`),
  deleteReplay: (id: number) => request<void>('DELETE', `/replays/${id}`),
  danmaku: (id: number, fromMs: number, toMs: number) =>
    request<Danmaku[]>('GET', `/recordings/${id}/danmaku`, { query: { from_ms: fromMs, to_ms: toMs } }),

  videos: (query: Query) => request<Page<Video>>('GET', '/videos', { query }),
  video: (id: number) => request<Video>('GET', `/videos/${id}`),
  updateVideo: (id: number, body: VideoPatch) => request<Video>('PATCH', `/videos/${id}`, { body }),
  deleteVideo: (id: number) => request<void>('DELETE', `/videos/${id}`),
  viewVideo: (id: number) => request<{ counted: boolean; view_count: number }>('POST', `/videos/${id}/views`),
  videoCategories: () => request<VideoCategory[]>('GET', '/video-categories'),
  comments: (id: number, query: Query) => request<Page<Comment>>('GET', `/videos/${id}/comments`, { query }),
  comment: (id: number, text: string, parentId: number | null) =>
    request<Comment>('POST', `/videos/${id}/comments`, { body: { text, parent_id: parentId ?? undefined } }),
  editComment: (id: number, commentId: number, text: string) =>
    request<Comment>('PATCH', `/videos/${id}/comments/${commentId}`, { body: { text } }),
  deleteComment: (id: number, commentId: number) => request<void>('DELETE', `/videos/${id}/comments/${commentId}`),

  gifts: () => request<Gift[]>('GET', '/gifts'),
  wallet: () => request<{ balance: number }>('GET', '/me/wallet'),

  myChannels: () => request<Page<Channel>>('GET', '/me/channels', { query: { limit: 100 } }),
  createChannel: (body: { slug: string; title: string; category: string; tags: string[] }) =>
    request<Channel>('POST', '/me/channels', { body }),
  updateChannel: (slug: string, body: { title?: string; category?: string; tags?: string[] }) =>
    request<Channel>('PATCH', `/me/channels/${slug}`, { body }),
  keys: (slug: string) => request<Page<StreamKey>>('GET', `/me/channels/${slug}/keys`, { query: { limit: 100 } }),
  issueKey: (slug: string, label: string) =>
    request<IssuedStreamKey>('POST', `/me/channels/${slug}/keys`, { body: { label } }),
  rotateKey: (slug: string, jti: string) =>
    request<IssuedStreamKey>('POST', `/me/channels/${slug}/keys/${jti}/rotate`),
  revokeKey: (slug: string, jti: string) => request<void>('DELETE', `/me/channels/${slug}/keys/${jti}`),
  myLive: (slug: string) =>
    request<{ live: boolean; stream: LiveNow | null }>('GET', `/me/channels/${slug}/live`),

  users: (query: Query) => request<Page<User>>('GET', '/admin/users', { query }),
  updateUser: (id: number, body: { role?: Role; banned?: boolean }) =>
    request<User>('PATCH', `/admin/users/${id}`, { body }),
  adminChannels: (query: Query) => request<Page<Channel>>('GET', '/admin/channels', { query }),
  adminKeys: (slug: string) =>
    request<Page<StreamKey>>('GET', `/admin/channels/${slug}/keys`, { query: { limit: 100 } }),
  adminRevokeKey: (jti: string) => request<void>('DELETE', `/admin/keys/${jti}`),
  adminLive: () => request<Page<LiveNow>>('GET', '/admin/live', { query: { limit: 100 } }),
  kick: (slug: string) => request<void>('POST', `/admin/live/${slug}/kick`),
  credit: (id: number, amount: number, reason: string) =>
    request<unknown>('POST', `/admin/users/${id}/wallet`, { body: { amount, reason } }),
  audit: (query: Query) => request<Page<AuditEntry>>('GET', '/admin/audit', { query }),
  retention: () => request<Retention>('GET', '/admin/replays/retention'),
  setRetention: (body: Retention) => request<unknown>('PUT', '/admin/replays/retention', { body }),
};
