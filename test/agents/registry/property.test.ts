import { describe, expect, it } from 'vitest';
import { AgentRegistry, type AgentEntry, type AgentWhere, Pid } from '../../../src/index.js';
import { clockedNode, idler, listOf, seeded, useNodes } from '../../support.js';

const track = useNodes();

const CAPS = ['a', 'b', 'c', 'd'];
const KINDS = ['k1', 'k2', 'k3'];
const TEAMS = ['t1', 't2'];
const ROLES = ['r1', 'r2'];

interface Model {
  pid: Pid;
  capabilities: string[];
  kinds: string[];
  team: string | undefined;
  role: string | undefined;
  load: number;
  status: 'healthy' | 'unhealthy';
}

/** Every field `where` gives matches `e` (the brute force the index must agree with). */
function matches(e: AgentEntry, w: AgentWhere): boolean {
  const caps = [...(w.capabilities ?? []), ...(w.capability === undefined ? [] : [w.capability])];
  if (!caps.every((c) => e.meta.capabilities.includes(c))) return false;
  if (w.kind !== undefined && !e.meta.kinds.includes(w.kind)) return false;
  if (w.team !== undefined && e.meta.team !== w.team) return false;
  if (w.role !== undefined && e.meta.role !== w.role) return false;
  const h = w.health ?? 'healthy';
  return h === 'any' || e.meta.health === h;
}

describe('AgentRegistry: index against brute force (seeded random operations)', () => {
  for (const [seed, services] of [[1, true], [7, true], [42, true], [5, false]] as const) {
    it(`seed ${seed}${services ? '' : ' (no monitor service)'}: after every operation, queries (kept answers, limits, several fields) answer what a scan of the entries answers`, async () => {
      const { node, clock } = clockedNode(track, services ? {} : { services: false });
      const registry = await AgentRegistry.start(node, { name: `prop-${seed}`, heartbeatIntervalMs: 100, missedHeartbeats: 2 });
      const random = seeded(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
      const some = (xs: readonly string[]): string[] => xs.filter(() => random() < 0.4);
      const pool: Pid[] = Array.from({ length: 8 }, () => idler(node));
      const model = new Map<string, Model>();
      const keysOf = (pid: Pid): string[] => [...model].filter(([, m]) => m.pid === pid).map(([k]) => k);
      // live pids whose last entry was removed on purpose: their updates and heartbeats are answered so
      const removed = new Map<string, 'replaced' | 'unregistered'>();
      const removeKeys = (keys: readonly string[], reason: 'replaced' | 'unregistered'): void => {
        const owners = new Set(keys.map((k) => model.get(k)!.pid));
        for (const k of keys) model.delete(k);
        for (const p of owners) if (keysOf(p).length === 0) removed.set(Pid.format(p), reason);
      };
      const missing = (ref: string | Pid) => ({ error: (typeof ref === 'string' ? undefined : removed.get(Pid.format(ref))) ?? 'not_registered' });
      const randomWhere = (): AgentWhere => {
        const w: { -readonly [K in keyof AgentWhere]: AgentWhere[K] } = {};
        if (random() < 0.4) w.capability = pick(CAPS);
        if (random() < 0.2) w.capabilities = some(CAPS);
        if (random() < 0.3) w.kind = pick(KINDS);
        if (random() < 0.3) w.team = pick(TEAMS);
        if (random() < 0.3) w.role = pick(ROLES);
        if (random() < 0.5) w.health = pick(['healthy', 'unhealthy', 'any'] as const);
        return w;
      };
      const randomMeta = () => {
        const m: Record<string, unknown> = {};
        if (random() < 0.7) m.capabilities = some(CAPS);
        if (random() < 0.5) m.kinds = some(KINDS);
        if (random() < 0.5) m.team = pick(TEAMS);
        if (random() < 0.5) m.role = pick(ROLES);
        if (random() < 0.3) m.load = Math.floor(random() * 10);
        if (random() < 0.2) m.status = pick(['healthy', 'unhealthy']);
        return m;
      };
      const check = (step: number, op: string): void => {
        const all = registry.query({ health: 'any' });
        expect(new Set(all.map((e) => e.key)), `step ${step} ${op}: keys`).toEqual(new Set(model.keys()));
        for (const e of all) {
          const m = model.get(e.key)!;
          expect(e.pid, `step ${step} ${op}: pid of ${e.key}`).toBe(m.pid);
          expect(e.meta, `step ${step} ${op}: meta of ${e.key}`).toMatchObject({
            capabilities: m.capabilities, kinds: m.kinds, team: m.team, role: m.role, load: m.load, status: m.status,
          });
          if (m.status === 'unhealthy') expect(e.meta.health).toBe('unhealthy');
          expect(registry.lookup(e.key)).toBe(e);
        }
        for (let q = 0; q < 6; q++) {
          const w = randomWhere();
          const got = registry.query(w);
          const want = all.filter((e) => matches(e, w));
          expect(new Set(got), `step ${step} ${op}: query ${JSON.stringify(w)}`).toEqual(new Set(want));
          expect(got).toHaveLength(want.length);
          const limit = 1 + Math.floor(random() * 3);
          expect(registry.query({ ...w, limit }), `step ${step}: limited ${JSON.stringify(w)}`).toEqual(got.slice(0, limit));
        }
      };
      for (let step = 0; step < 1500; step++) {
        const r = random();
        let op: string;
        if (r < 0.3) {
          const pid = pick(pool);
          const meta = randomMeta();
          const key = random() < 0.8 ? pick(['x1', 'x2', 'x3', 'x4', 'x5', 'x6', '__proto__', 'constructor']) : undefined;
          op = `register ${key} ${JSON.stringify(meta)}`;
          const res = await registry.register(pid, meta, key === undefined ? undefined : { key });
          const k = key ?? Pid.format(pid);
          expect(res).toEqual({ key: k });
          removed.delete(Pid.format(pid));
          if (model.has(k) && model.get(k)!.pid !== pid) removeKeys([k], 'replaced');
          model.set(k, {
            pid,
            capabilities: (meta.capabilities as string[] | undefined) ?? [],
            kinds: (meta.kinds as string[] | undefined) ?? [],
            team: meta.team as string | undefined,
            role: meta.role as string | undefined,
            load: (meta.load as number | undefined) ?? 0,
            status: (meta.status as 'healthy' | 'unhealthy' | undefined) ?? 'healthy',
          });
        } else if (r < 0.5) {
          const patch = randomMeta();
          const byPid = random() < 0.3;
          const ref = byPid ? pick(pool) : pick([...model.keys(), 'nope']);
          op = `update ${String(ref)} ${JSON.stringify(patch)}`;
          const keys = typeof ref === 'string' ? (model.has(ref) ? [ref] : []) : keysOf(ref);
          expect(await registry.update(ref, patch)).toEqual(keys.length === 0 ? missing(ref) : 'ok');
          for (const k of keys) {
            const m = model.get(k)!;
            Object.assign(m, Object.fromEntries(Object.entries(patch).map(([f, v]) => [f, v])));
          }
        } else if (r < 0.6) {
          const ref = random() < 0.5 ? pick(pool) : pick([...model.keys(), 'nope']);
          op = `unregister ${String(ref)}`;
          const keys = typeof ref === 'string' ? (model.has(ref) ? [ref] : []) : keysOf(ref);
          expect(await registry.unregister(ref)).toBe(keys.length === 0 ? 'not_found' : 'ok');
          removeKeys(keys, 'unregistered');
        } else if (r < 0.7) {
          const i = Math.floor(random() * pool.length);
          const pid = pool[i]!;
          op = `kill ${Pid.format(pid)}`;
          node.exit(pid, 'kill');
          pool[i] = idler(node);
          await node.idle();
          for (const k of keysOf(pid)) model.delete(k);
          removed.delete(Pid.format(pid));
        } else if (r < 0.85) {
          const ref = random() < 0.5 ? pick(pool) : pick([...model.keys(), 'nope']);
          const beat = random() < 0.5 ? { load: Math.floor(random() * 5) } : random() < 0.5 ? { status: pick(['healthy', 'unhealthy'] as const) } : {};
          op = `heartbeat ${String(ref)} ${JSON.stringify(beat)}`;
          const keys = typeof ref === 'string' ? (model.has(ref) ? [ref] : []) : keysOf(ref);
          expect(await registry.heartbeat(ref, beat)).toEqual(keys.length === 0 ? missing(ref) : 'ok');
          for (const k of keys) Object.assign(model.get(k)!, beat);
        } else if (r < 0.95) {
          const ms = pick([1, 50, 99, 100, 101, 200, 1000]);
          op = `advance ${ms}`;
          await clock.advance(ms);
          await node.idle();
        } else {
          op = 'registry crash';
          // past the agents supervisor's intensity window (10 restarts in 5 s of node clock)
          await clock.advance(1000);
          await node.idle();
          const before = registry.pid;
          node.exit(before, new Error('crash'));
          await node.idle();
          expect(registry.pid.id).not.toBe(before.id);
        }
        check(step, op);
      }
      const stats = await registry.stats();
      expect(stats.agents).toBe(model.size);
      // one monitor per registered process, none left on processes that hold no key any more
      const owners = new Set([...model.values()].map((m) => Pid.format(m.pid)));
      expect(stats.processes).toBe(owners.size);
      if (!services) return;
      const watched = listOf(node).filter((m) => Pid.equals(m.owner, registry.pid)).map((m) => Pid.format(m.target));
      expect(new Set(watched)).toEqual(owners);
      expect(watched).toHaveLength(owners.size);
    }, 60_000);
  }
});
