// Live catch-up: keeps a live player near the edge of what it has buffered. A viewer who
// stalled, or whose tab was in the background, would otherwise stay seconds behind the
// stream (and behind the chat) for as long as they watch.
export interface CatchUpOptions {
  /// Above this much buffered media (s), play faster.
  speedUpAboveS: number;
  /// Back to normal speed once below this (s): a gap between the two keeps the rate from
  /// flapping at every check.
  normalBelowS: number;
  /// Above this (s), speeding up would take too long: jump.
  jumpAboveS: number;
  /// Where a jump lands, this far (s) behind the buffered end, so playback does not stall at
  /// once for lack of data.
  jumpBehindS: number;
  /// The faster rate.
  fastRate: number;
}

export const defaultCatchUp: CatchUpOptions = {
  speedUpAboveS: 1.5,
  normalBelowS: 0.6,
  jumpAboveS: 5,
  jumpBehindS: 0.5,
  fastRate: 1.15,
};

export interface CatchUpDecision {
  rate: number;
  /// Seek here (media time, s) when present.
  seekTo?: number;
}

/// What to do given the media time and the buffered end (both in s) and the current rate.
export function catchUp(
  currentTime: number,
  bufferedEnd: number,
  rate: number,
  opts: CatchUpOptions = defaultCatchUp,
): CatchUpDecision {
  const lag = bufferedEnd - currentTime;
  if (!Number.isFinite(lag) || lag <= 0) return { rate: 1 };
  if (lag > opts.jumpAboveS) return { rate: 1, seekTo: bufferedEnd - opts.jumpBehindS };
  if (lag > opts.speedUpAboveS) return { rate: opts.fastRate };
  if (lag < opts.normalBelowS) return { rate: 1 };
  return { rate: rate > 1 ? opts.fastRate : 1 };
}

/// The end of the buffered range that holds `currentTime`, or of the last range when none
/// does (after a jump the playhead may sit in a gap).
export function bufferedEndAt(ranges: { length: number; start(i: number): number; end(i: number): number }, currentTime: number): number {
  if (ranges.length === 0) return currentTime;
  for (let i = 0; i < ranges.length; i += 1) {
    if (ranges.start(i) <= currentTime + 0.1 && currentTime <= ranges.end(i)) return ranges.end(i);
  }
  return ranges.end(ranges.length - 1);
}
