// Danmaku lane layout. The stage is cut into horizontal lanes one line high. A scrolling
// danmaku enters at the right edge and leaves at the left in `scrollMs`, so a longer text
// moves faster; a top or bottom one stays centred for `fixedMs`. A new danmaku takes the first
// lane where it overlaps nothing for its whole life; when every lane is taken it is dropped,
// which is what keeps 50 a second readable instead of a pile of text on one line.
export type DanmakuMode = 'scroll' | 'top' | 'bottom';

export interface LayoutOptions {
  width: number;
  height: number;
  laneHeight: number;
  /// The share of the height that danmaku may use, from the top (0..1].
  area: number;
  scrollMs: number;
  fixedMs: number;
}

export const defaultLayout: Omit<LayoutOptions, 'width' | 'height'> = {
  laneHeight: 30,
  area: 0.75,
  scrollMs: 8000,
  fixedMs: 4000,
};

export interface Placement {
  lane: number;
  /// Top of the line, px from the top of the stage.
  y: number;
  mode: DanmakuMode;
  startMs: number;
  endMs: number;
  /// Scrolling only: px per ms.
  speed: number;
  width: number;
}

interface Occupant {
  startMs: number;
  endMs: number;
  speed: number;
  width: number;
}

export class DanmakuLayout {
  private opts: LayoutOptions;
  private scroll: (Occupant | undefined)[] = [];
  private fixed: (Occupant | undefined)[] = [];
  /// Danmaku dropped because no lane was free.
  dropped = 0;

  constructor(opts: Partial<LayoutOptions> & { width: number; height: number }) {
    this.opts = { ...defaultLayout, ...opts };
    this.resize(this.opts.width, this.opts.height);
  }

  get lanes(): number {
    return Math.max(1, Math.floor((this.opts.height * this.opts.area) / this.opts.laneHeight));
  }

  resize(width: number, height: number): void {
    this.opts.width = width;
    this.opts.height = height;
    // A resize changes every speed and position: what is on screen keeps its lane until it
    // ends, and new danmaku see the new lanes.
    this.scroll.length = this.lanes;
    this.fixed.length = this.lanes;
  }

  /// Forgets every occupant (after a seek the screen is cleared).
  clear(): void {
    this.scroll = new Array(this.lanes);
    this.fixed = new Array(this.lanes);
  }

  /// Where a danmaku of `width` px shown at `nowMs` goes, or null when there is no room.
  place(mode: DanmakuMode, width: number, nowMs: number): Placement | null {
    const { laneHeight, scrollMs, fixedMs } = this.opts;
    const lanes = this.lanes;
    if (mode === 'scroll') {
      const speed = (this.opts.width + width) / scrollMs;
      for (let lane = 0; lane < lanes; lane += 1) {
        if (this.scrollFits(this.scroll[lane], speed, nowMs)) {
          const occupant = { startMs: nowMs, endMs: nowMs + scrollMs, speed, width };
          this.scroll[lane] = occupant;
          return { lane, y: lane * laneHeight, mode, ...occupant };
        }
      }
    } else {
      for (let i = 0; i < lanes; i += 1) {
        // Bottom danmaku stack upwards from the bottom of the stage.
        const lane = mode === 'top' ? i : lanes - 1 - i;
        const taken = this.fixed[lane];
        if (!taken || taken.endMs <= nowMs) {
          const occupant = { startMs: nowMs, endMs: nowMs + fixedMs, speed: 0, width };
          this.fixed[lane] = occupant;
          const y =
            mode === 'top' ? lane * laneHeight : this.opts.height - (lanes - lane) * laneHeight;
          return { lane, y, mode, ...occupant };
        }
      }
    }
    this.dropped += 1;
    return null;
  }

  /// A scrolling danmaku fits behind `prev` if prev's tail has already come on screen and the
  /// newcomer, moving at `speed`, cannot reach prev's tail before prev has left the screen.
  private scrollFits(prev: Occupant | undefined, speed: number, nowMs: number): boolean {
    if (!prev || prev.endMs <= nowMs) return true;
    const elapsed = nowMs - prev.startMs;
    const tailOnScreen = elapsed * prev.speed >= prev.width;
    if (!tailOnScreen) return false;
    // prev's tail reaches the left edge at prev.endMs; the newcomer's head must not get there
    // first.
    const headArrives = nowMs + this.opts.width / speed;
    return headArrives >= prev.endMs;
  }
}

/// Horizontal position (px from the left of the stage) of a scrolling danmaku at `nowMs`.
export function scrollX(p: Placement, stageWidth: number, nowMs: number): number {
  return stageWidth - (nowMs - p.startMs) * p.speed;
}
