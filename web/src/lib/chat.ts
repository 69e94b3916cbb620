// A chat room connection (docs/chat-protocol.md): reconnects with back-off, signs in with the
// session's token on every (re)connect, and turns acked sends into promises.
import { Backoff } from './backoff';
import { session } from './session';

export interface Sender {
  id: number;
  name: string;
}

export interface MessageFrame {
  id: number;
  user: Sender;
  text: string;
  color?: string | null;
  mode?: string | null;
  offset_ms?: number | null;
  at: string;
}

export type ServerFrame =
  | { type: 'history'; channel: string; messages: (MessageFrame & { type: 'chat' | 'danmaku' })[] }
  | ({ type: 'chat' } & MessageFrame)
  | ({ type: 'danmaku' } & MessageFrame)
  | { type: 'like'; count: number; total: number }
  | { type: 'gift'; id: number; user: Sender; gift: { id: number; name: string; price: number }; count: number; value: number }
  | { type: 'system'; event: string; message_id?: number; user_id?: number; seconds?: number; until?: string }
  | { type: 'viewers'; video: number; chat: number; total: number }
  | { type: 'ack'; nonce?: string; id?: number; balance?: number; replayed?: boolean }
  | { type: 'error'; nonce?: string; code: string; message: string; retry_after_ms?: number };

export class ChatError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type Ack = Extract<ServerFrame, { type: 'ack' }>;

export type ChatStatus = 'connecting' | 'open' | 'closed';

export class ChatClient {
  private ws: WebSocket | null = null;
  private readonly backoff = new Backoff({ baseMs: 500, maxMs: 10000 });
  private pending = new Map<string, { resolve: (a: Ack) => void; reject: (e: Error) => void }>();
  private nonce = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;
  signedIn = false;

  constructor(
    private readonly slug: string,
    private readonly onFrame: (f: ServerFrame) => void,
    private readonly onStatus: (s: ChatStatus) => void = () => {},
  ) {
    this.connect();
  }

  private connect(): void {
    if (this.closed) return;
    this.onStatus('connecting');
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/api/v1/channels/${encodeURIComponent(this.slug)}/chat`);
    this.ws = ws;
    ws.onopen = () => {
      this.backoff.reset();
      this.onStatus('open');
      this.signedIn = false;
      if (session.token) {
        this.send({ type: 'auth', token: session.token }).then(
          () => (this.signedIn = true),
          () => (this.signedIn = false),
        );
      }
    };
    ws.onmessage = (ev) => {
      let frame: ServerFrame;
      try {
        frame = JSON.parse(ev.data as string);
      } catch {
        return;
      }
      if ((frame.type === 'ack' || frame.type === 'error') && frame.nonce && this.pending.has(frame.nonce)) {
        const p = this.pending.get(frame.nonce)!;
        this.pending.delete(frame.nonce);
        if (frame.type === 'ack') p.resolve(frame);
        else p.reject(new ChatError(frame.code, frame.message));
        return;
      }
      this.onFrame(frame);
    };
    ws.onclose = () => {
      this.ws = null;
      for (const p of this.pending.values()) p.reject(new ChatError('disconnected', 'the chat connection dropped'));
      this.pending.clear();
      if (this.closed) return;
      this.onStatus('closed');
      this.timer = setTimeout(() => this.connect(), this.backoff.next());
    };
  }

  /// Sends `frame` (with `v` and a nonce) and resolves on its ack.
  send(frame: Record<string, unknown>): Promise<Ack> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new ChatError('disconnected', 'not connected to the chat'));
    }
    this.nonce += 1;
    const nonce = `n${this.nonce}`;
    return new Promise((resolve, reject) => {
      this.pending.set(nonce, { resolve, reject });
      ws.send(JSON.stringify({ v: 1, ...frame, nonce }));
    });
  }

  /// A frame that gets no ack (likes).
  fire(frame: Record<string, unknown>): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ v: 1, ...frame }));
  }

  /// Signs in again with the session's current token (after a login on this page).
  reauth(): void {
    if (session.token && this.ws?.readyState === WebSocket.OPEN) {
      this.send({ type: 'auth', token: session.token }).then(() => (this.signedIn = true), () => {});
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.ws?.close();
  }
}

/// A random idempotency key. crypto.randomUUID exists only in secure contexts, and a server on
/// a LAN address over plain HTTP is not one; getRandomValues works everywhere.
export function idempotencyKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
