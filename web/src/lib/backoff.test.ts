import { describe, expect, it } from 'vitest';
import { Backoff } from './backoff';

describe('Backoff', () => {
  it('doubles from the base up to the cap', () => {
    const b = new Backoff({ baseMs: 500, maxMs: 8000, random: () => 1 - Number.EPSILON });
    const delays = Array.from({ length: 8 }, () => b.next());
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 8000, 8000, 8000]);
  });

  it('jitters within the upper half of each step', () => {
    const low = new Backoff({ baseMs: 1000, maxMs: 8000, random: () => 0 });
    expect([low.next(), low.next(), low.next()]).toEqual([500, 1000, 2000]);
    const mid = new Backoff({ baseMs: 1000, maxMs: 8000, random: () => 0.5 });
    expect(mid.next()).toBe(750);
  });

  it('starts over after a reset', () => {
    const b = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 0 });
    b.next();
    b.next();
    b.next();
    b.reset();
    expect(b.next()).toBe(50);
  });

  it('never grows past the cap however many attempts fail', () => {
    const b = new Backoff({ baseMs: 1, maxMs: 5000, random: () => 0.999 });
    let last = 0;
    for (let i = 0; i < 10_000; i += 1) last = b.next();
    expect(last).toBeLessThanOrEqual(5000);
    expect(Number.isFinite(last)).toBe(true);
  });
});
