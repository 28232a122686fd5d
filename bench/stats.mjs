// The statistics of the bench scripts.

/** The median of a non-empty list of numbers (the mean of the middle two for an even count). */
export function median(xs) {
  if (xs.length === 0) throw new Error('median of nothing');
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** `x` rounded to `d` decimals. */
export const round = (x, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

/**
 * Paired runs of one bench (`ours[i]` and `theirs[i]` ran one after the other): the median rates,
 * and the median, lowest and highest of the per-pair ratios ours / theirs. A bench that reports
 * `bytes_per_process` has both medians too.
 */
export function pairedChange(ours, theirs) {
  if (ours.length === 0 || ours.length !== theirs.length) throw new Error('pairedChange: as many runs on each side, at least one');
  const ratios = ours.map((o, i) => o.ops_per_s / theirs[i].ops_per_s);
  const line = {
    ops_per_s: Math.round(median(ours.map((r) => r.ops_per_s))),
    base_ops_per_s: Math.round(median(theirs.map((r) => r.ops_per_s))),
    change: round(median(ratios)),
    change_min: round(Math.min(...ratios)),
    change_max: round(Math.max(...ratios)),
  };
  if (ours[0].bytes_per_process !== undefined) {
    line.bytes_per_process = Math.round(median(ours.map((r) => r.bytes_per_process)));
    line.base_bytes_per_process = Math.round(median(theirs.map((r) => r.bytes_per_process)));
  }
  return line;
}
