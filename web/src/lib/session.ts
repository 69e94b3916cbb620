// Who is signed in. The access token is kept in localStorage so a reload keeps the sign-in;
// the API takes it as a bearer header (never a cookie), so other sites cannot ride on it.
import { reactive } from 'vue';
import type { TokenResponse, User } from './api';

const KEY = 'onair.session';

interface Stored {
  token: string;
  expiresAt: string;
  user: User;
}

function load(): Stored | null {
  try {
    const raw = localStorage.getItem(KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Stored;
    return new Date(s.expiresAt).getTime() > Date.now() ? s : null;
  } catch {
    return null;
  }
}

const state = reactive<{ stored: Stored | null }>({ stored: typeof localStorage === 'undefined' ? null : load() });

export const session = {
  get token(): string | null {
    return state.stored?.token ?? null;
  },
  get user(): User | null {
    return state.stored?.user ?? null;
  },
  get canStream(): boolean {
    const role = state.stored?.user.role;
    return role === 'streamer' || role === 'admin';
  },
  get isAdmin(): boolean {
    return state.stored?.user.role === 'admin';
  },
  set(t: TokenResponse): void {
    state.stored = { token: t.access_token, expiresAt: t.expires_at, user: t.user };
    localStorage.setItem(KEY, JSON.stringify(state.stored));
  },
  clear(): void {
    state.stored = null;
    localStorage.removeItem(KEY);
  },
};
