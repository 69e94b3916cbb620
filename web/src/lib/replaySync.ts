// Which of a replay's danmaku to show as the video plays: those whose offset the playhead has
// just passed. A jump (a seek, or a stall that skipped ahead) shows nothing of what it jumped
// over; the caller clears the screen instead, so a seek never floods it.
export interface Timed {
  offset_ms: number;
}

/// The largest forward step (ms) still treated as playback rather than a jump.
export const MAX_STEP_MS = 1500;

export class ReplaySync<T extends Timed> {
  private items: T[] = [];
  private lastMs: number | null = null;

  /// Adds danmaku (any order; duplicates by identity are the caller's concern).
  add(more: T[]): void {
    this.items = this.items.concat(more).sort((a, b) => a.offset_ms - b.offset_ms);
  }

  /// The playhead moved to `nowMs`: what to show now, and whether the screen must be cleared
  /// first (a seek or jump).
  advance(nowMs: number): { show: T[]; jumped: boolean } {
    const last = this.lastMs;
    this.lastMs = nowMs;
    if (last === null || nowMs < last || nowMs - last > MAX_STEP_MS) {
      return { show: [], jumped: last !== null && nowMs !== last };
    }
    return { show: this.between(last, nowMs), jumped: false };
  }

  /// After an explicit seek: start counting from `nowMs`.
  seek(nowMs: number): void {
    this.lastMs = nowMs;
  }

  /// Items with `from < offset_ms <= to`.
  private between(from: number, to: number): T[] {
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.items[mid].offset_ms <= from) lo = mid + 1;
      else hi = mid;
    }
    const out: T[] = [];
    for (let i = lo; i < this.items.length && this.items[i].offset_ms <= to; i += 1) out.push(this.items[i]);
    return out;
  }
}
