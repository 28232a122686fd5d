// PROVISIONAL stub (not committed): replaced by the codec branch
import type { Pid } from '../runtime/Pid.js';
import { PidImpl, RefImpl } from '../runtime/Pid.js';
export type PidFactory = (node: string, creation: number, id: number) => Pid;
export function encodeValue(value: unknown, _maxLength?: number): string {
  return JSON.stringify(value, function (this: Record<string, unknown>, k, v) {
    const raw = this[k];
    if (raw instanceof PidImpl) return { $keel: 'pid', n: raw.node, c: raw.creation, i: raw.id };
    if (raw instanceof RefImpl) return { $keel: 'ref', n: raw.node, i: raw.id };
    if (raw instanceof Error) return { $keel: 'error', name: raw.name, message: raw.message };
    if (raw === undefined) return { $keel: 'u' };
    return v;
  }) ?? '{"$keel":"u"}';
}
export function decodeBatch(text: string, pids: PidFactory): unknown {
  return JSON.parse(text, (_k, v) => {
    if (v !== null && typeof v === 'object' && typeof v.$keel === 'string') {
      if (v.$keel === 'pid') return pids(v.n, v.c, v.i);
      if (v.$keel === 'ref') return new RefImpl(v.n, v.i);
      if (v.$keel === 'error') { const e = new Error(v.message); e.name = v.name; return e; }
      if (v.$keel === 'u') return undefined;
    }
    return v;
  });
}
