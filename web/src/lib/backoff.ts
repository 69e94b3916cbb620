// Reconnect delays: exponential from `baseMs`, capped at `maxMs`, with "equal jitter" (half
// fixed, half random) so that a thousand viewers dropped by the same restart do not all come
// back in the same millisecond, yet none waits less than half the step.
export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  factor: number;
  /// A number in [0, 1); injectable so the tests are exact.
  random: () => number;
}

export const defaultBackoff: BackoffOptions = {
  baseMs: 500,
  maxMs: 8000,
  factor: 2,
  random: Math.random,
};

export class Backoff {
  private attempt = 0;
  private readonly opts: BackoffOptions;

  constructor(opts: Partial<BackoffOptions> = {}) {
    this.opts = { ...defaultBackoff, ...opts };
  }

  /// The delay before the next attempt; each call counts one attempt.
  next(): number {
    const { baseMs, maxMs, factor, random } = this.opts;
    const step = Math.min(maxMs, baseMs * factor ** this.attempt);
    // Once the cap is reached the exponent stops growing, so it never overflows to Infinity.
    if (step < maxMs) this.attempt += 1;
    return Math.round(step / 2 + (step / 2) * random());
  }

  /// After a success: the next failure starts from `baseMs` again.
  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
