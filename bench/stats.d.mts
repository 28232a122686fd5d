// Types of stats.mjs, for the tests.
export interface BenchRun {
  ops_per_s: number;
  bytes_per_process?: number;
}
export interface PairedChange {
  ops_per_s: number;
  base_ops_per_s: number;
  change: number;
  change_min: number;
  change_max: number;
  bytes_per_process?: number;
  base_bytes_per_process?: number;
}
export function median(xs: readonly number[]): number;
export function round(x: number, d?: number): number;
export function pairedChange(ours: readonly BenchRun[], theirs: readonly BenchRun[]): PairedChange;
