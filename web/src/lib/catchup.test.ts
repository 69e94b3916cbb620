import { describe, expect, it } from 'vitest';
import { bufferedEndAt, catchUp, defaultCatchUp } from './catchup';

const ranges = (...r: [number, number][]) => ({
  length: r.length,
  start: (i: number) => r[i][0],
  end: (i: number) => r[i][1],
});

describe('catchUp', () => {
  it('plays at normal speed near the live edge', () => {
    expect(catchUp(10, 10.4, 1)).toEqual({ rate: 1 });
    expect(catchUp(10, 11.2, 1)).toEqual({ rate: 1 });
  });

  it('speeds up past 1.5 s of buffer', () => {
    expect(catchUp(10, 11.6, 1)).toEqual({ rate: defaultCatchUp.fastRate });
  });

  it('keeps speeding until well under the threshold, then returns to 1', () => {
    const fast = defaultCatchUp.fastRate;
    expect(catchUp(10, 11.0, fast)).toEqual({ rate: fast });
    expect(catchUp(10, 10.5, fast)).toEqual({ rate: 1 });
  });

  it('jumps to just behind the buffered end when far behind', () => {
    expect(catchUp(10, 20, 1)).toEqual({ rate: 1, seekTo: 19.5 });
  });

  it('does nothing odd with no buffer or a buffer behind the playhead', () => {
    expect(catchUp(10, 10, 1.15)).toEqual({ rate: 1 });
    expect(catchUp(10, 9, 1)).toEqual({ rate: 1 });
    expect(catchUp(Number.NaN, 9, 1)).toEqual({ rate: 1 });
  });
});

describe('bufferedEndAt', () => {
  it('uses the range holding the playhead', () => {
    expect(bufferedEndAt(ranges([0, 5], [6, 9]), 3)).toBe(5);
    expect(bufferedEndAt(ranges([0, 5], [6, 9]), 7)).toBe(9);
  });

  it('falls back to the last range from a gap, and to the playhead with none', () => {
    expect(bufferedEndAt(ranges([0, 5], [6, 9]), 5.5)).toBe(9);
    expect(bufferedEndAt(ranges(), 4)).toBe(4);
  });
});
