import { describe, expect, it } from 'vitest';
import { ReplaySync } from './replaySync';

const at = (...ms: number[]) => ms.map((offset_ms) => ({ offset_ms }));

describe('ReplaySync', () => {
  it('shows each danmaku once, as the playhead passes it', () => {
    const s = new ReplaySync();
    s.add(at(500, 1000, 1200, 3000));
    expect(s.advance(0).show).toEqual([]);
    expect(s.advance(600).show).toEqual(at(500));
    expect(s.advance(1200).show).toEqual(at(1000, 1200));
    expect(s.advance(1300).show).toEqual([]);
    expect(s.advance(2500).show).toEqual([]);
    expect(s.advance(3400).show).toEqual(at(3000));
  });

  it('shows nothing of what a seek jumps over, and goes on from the new place', () => {
    const s = new ReplaySync();
    s.add(at(1000, 2000, 30_000, 30_500));
    s.advance(0);
    const jump = s.advance(29_900);
    expect(jump).toEqual({ show: [], jumped: true });
    expect(s.advance(30_600).show).toEqual(at(30_000, 30_500));
    expect(s.advance(1500)).toEqual({ show: [], jumped: true });
    expect(s.advance(2100).show).toEqual(at(2000));
  });

  it('takes danmaku loaded later, in order', () => {
    const s = new ReplaySync();
    s.add(at(5000));
    s.add(at(4000, 4500));
    s.seek(3900);
    expect(s.advance(5000).show).toEqual(at(4000, 4500, 5000));
  });
});
