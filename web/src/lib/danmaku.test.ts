import { describe, expect, it } from 'vitest';
import { DanmakuLayout, type Placement, scrollX } from './danmaku';

const W = 800;
const H = 450;

function overlaps(a: Placement, b: Placement, stageWidth: number): boolean {
  if (a.lane !== b.lane || a.mode !== b.mode) return false;
  const from = Math.max(a.startMs, b.startMs);
  const to = Math.min(a.endMs, b.endMs);
  if (from >= to) return false;
  if (a.mode !== 'scroll') return true;
  // Sample both boxes over the time they share the screen.
  for (let t = from; t <= to; t += 10) {
    const ax = scrollX(a, stageWidth, t);
    const bx = scrollX(b, stageWidth, t);
    if (ax < bx + b.width && bx < ax + a.width) return true;
  }
  return false;
}

describe('DanmakuLayout', () => {
  it('cuts the top three quarters of the stage into lanes', () => {
    const layout = new DanmakuLayout({ width: W, height: H, laneHeight: 30 });
    expect(layout.lanes).toBe(11);
  });

  it('puts danmaku sent together on different lanes', () => {
    const layout = new DanmakuLayout({ width: W, height: H });
    const a = layout.place('scroll', 120, 0)!;
    const b = layout.place('scroll', 120, 0)!;
    expect(a.lane).toBe(0);
    expect(b.lane).toBe(1);
    expect(b.y).toBe(30);
  });

  it('reuses a lane once the previous one is clear of the right edge and cannot be caught', () => {
    const layout = new DanmakuLayout({ width: W, height: H, scrollMs: 8000 });
    const long = layout.place('scroll', 400, 0)!;
    // Its tail is on screen after 400 / ((800 + 400) / 8000) = 2667 ms; a same-width
    // follower moves as fast and never catches it.
    expect(layout.place('scroll', 400, 2000)!.lane).toBe(1);
    expect(layout.place('scroll', 400, 2700)!.lane).toBe(long.lane);
  });

  it('keeps a fast long danmaku off the lane of a slow short one it would catch', () => {
    const layout = new DanmakuLayout({ width: W, height: H, scrollMs: 8000 });
    layout.place('scroll', 40, 0);
    // A 600 px text moves at 0.175 px/ms and would reach the 0.105 px/ms one before it leaves.
    expect(layout.place('scroll', 600, 1000)!.lane).toBe(1);
  });

  it('stacks top danmaku downwards and bottom ones upwards, each for fixedMs', () => {
    const layout = new DanmakuLayout({ width: W, height: H, fixedMs: 4000 });
    const lanes = layout.lanes;
    expect(layout.place('top', 100, 0)!.y).toBe(0);
    expect(layout.place('top', 100, 0)!.y).toBe(30);
    const bottom = layout.place('bottom', 100, 0)!;
    expect(bottom.lane).toBe(lanes - 1);
    expect(bottom.y).toBe(H - 30);
    expect(layout.place('top', 100, 4000)!.lane).toBe(0);
  });

  it('never overlaps two danmaku at 50 a second, and drops what does not fit', () => {
    const layout = new DanmakuLayout({ width: W, height: H });
    const placed: Placement[] = [];
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const modes = ['scroll', 'scroll', 'scroll', 'top', 'bottom'] as const;
    for (let i = 0; i < 50 * 20; i += 1) {
      const mode = modes[Math.floor(random() * modes.length)];
      const p = layout.place(mode, 40 + Math.floor(random() * 400), i * 20);
      if (p) placed.push(p);
    }
    for (let i = 0; i < placed.length; i += 1) {
      for (let j = i + 1; j < placed.length && placed[j].startMs < placed[i].endMs; j += 1) {
        expect(overlaps(placed[i], placed[j], W), `${i} and ${j}`).toBe(false);
      }
    }
    console.log(`50/s for 20 s: ${placed.length} shown, ${layout.dropped} dropped`);
    expect(placed.length + layout.dropped).toBe(1000);
    expect(placed.length).toBeGreaterThan(100);
  });

  it('forgets every lane on clear', () => {
    const layout = new DanmakuLayout({ width: W, height: H });
    layout.place('scroll', 300, 0);
    layout.clear();
    expect(layout.place('scroll', 300, 1)!.lane).toBe(0);
  });
});
