import { describe, expect, it } from 'vitest';
import type { Proc } from '../../src/runtime/internal/Proc.js';
import { ProcTable } from '../../src/runtime/internal/ProcTable.js';

/** A stand-in record: the table only stores and returns it. */
const rec = (id: number): Proc => ({ id }) as unknown as Proc;
const idsOf = (table: ProcTable): number[] => table.values().map((p) => (p as unknown as { id: number }).id);

describe('ProcTable', () => {
  it('finds, lists and forgets records on both sides of 2^31, where the chunk number turns from a shift to a division', () => {
    const table = new ProcTable();
    table.set(7, rec(7));
    const around = [2 ** 31 - 1025, 2 ** 31 - 1, 2 ** 31, 2 ** 31 + 1, 2 ** 31 + 1023, 2 ** 31 + 1024];
    for (const id of around) table.set(id, rec(id));
    for (const id of [7, ...around]) expect(table.get(id), String(id)).toEqual({ id });
    for (const id of [8, 2 ** 31 - 2, 2 ** 31 + 2, 2 ** 31 + 1025]) expect(table.get(id), String(id)).toBeUndefined();
    // a negative id is no process's, even where 32-bit arithmetic would wrap it onto one
    for (const id of [-1, 7 - 2 ** 32, 2 ** 31 - 1 - 2 ** 32, -(2 ** 31)]) expect(table.get(id), String(id)).toBeUndefined();
    table.delete(7 - 2 ** 32);
    expect(table.get(7)).toEqual({ id: 7 });
    expect(idsOf(table)).toEqual([7, ...around]);
    // the first chunk's last process dies: the empty chunks at the front go, and the rest is still found
    table.delete(7);
    expect(table.get(7)).toBeUndefined();
    for (const id of around) expect(table.get(id), String(id)).toEqual({ id });
    expect(idsOf(table)).toEqual(around);
    for (const id of around) table.delete(id);
    expect(table.size).toBe(0);
    expect(idsOf(table)).toEqual([]);
  });
});
