/* eslint-disable keel/no-raw-send, keel/no-unmanaged-monitor -- typed handlers over the runtime's own primitives */
// A handler is typed by the messages its process can receive: its own, plus a `Down` only where it
// monitors and an `Exit` only where it traps exits (the context refuses `monitor`/`trapExits`
// otherwise). Type-level checks (`expectTypeOf`, `@ts-expect-error`) run under `npm run typecheck`;
// the runtime half checks that what the types promise is what arrives.
import { describe, expect, expectTypeOf, it } from 'vitest';
import { isDown, isExit, isSystemMessage, type Context, type Down, type Exit, type Pid, type SystemMessage } from '../../src/index.js';
import { probe } from '../../src/testing/index.js';
import { useNodes } from '../support.js';

const track = useNodes();

type Order = { type: 'order'; id: number };

describe('a handler typed for its own messages', () => {
  it('is accepted as it is: no system messages in its type, none arriving', async () => {
    const node = track();
    const seen = probe<number>(node);
    // the handler's own parameter type decides M: no `| SystemMessage`, no guard
    const shop = node.spawn((ctx: Context<Order>) => (msg: Order) => ctx.send(seen, msg.id));
    expectTypeOf(shop).toEqualTypeOf<Pid<Order>>();
    node.send(shop, { type: 'order', id: 7 });
    // @ts-expect-error a Pid<Order> takes orders only
    node.send(shop, { type: 'refund', id: 7 });
    await seen.receive((m) => m === 7);
    node.exit(shop, 'kill');
  });

  it('cannot monitor or trap exits unless Down or Exit is in its message type', () => {
    const node = track();
    node.spawn<Order>((ctx) => {
      const check = (): void => {
        // @ts-expect-error the Down of this monitor would have no place in Order
        ctx.monitor(ctx.self);
        // @ts-expect-error nor the Down of a managed monitor
        node.monitors.monitor(ctx, ctx.self);
        // @ts-expect-error an Exit would have no place in Order
        ctx.trapExits();
      };
      void check;
      return () => {};
    });
    node.spawn<Order | Down>((ctx) => {
      const check = (): void => {
        ctx.monitor(ctx.self);
        node.monitors.monitor(ctx, ctx.self); // the managed monitor asks the same of its owner
        // @ts-expect-error Down is there, Exit is not
        ctx.trapExits();
      };
      void check;
      return () => {};
    });
    node.spawn<Order | SystemMessage>((ctx) => {
      const check = (): void => {
        ctx.monitor(ctx.self);
        ctx.trapExits();
      };
      void check;
      return () => {};
    });
    // an untyped process (M inferred as unknown) may do both, as before
    node.spawn((ctx) => {
      const check = (): void => {
        ctx.monitor(ctx.self);
        ctx.trapExits(false);
      };
      void check;
      return () => {};
    });
  });

  it('receives the Down of its monitor and the Exit it traps, told apart by isDown, isExit and isSystemMessage', async () => {
    const node = track();
    const seen = probe<string>(node);
    const worker = node.spawn<'stop'>(() => () => {
      throw new Error('boom');
    });
    const watcher = node.spawn<Order | Down | Exit>((ctx) => {
      ctx.trapExits();
      ctx.monitor(worker);
      ctx.link(worker);
      return (msg) => {
        if (isSystemMessage(msg)) {
          expectTypeOf(msg).toEqualTypeOf<Down | Exit>();
          ctx.send(seen, isDown(msg) ? `down ${String(msg.reason)}` : `exit ${String(msg.reason)}`);
          return;
        }
        expectTypeOf(msg).toEqualTypeOf<Order>();
        ctx.send(seen, `order ${msg.id}`);
      };
    });
    node.send(watcher, { type: 'order', id: 1 });
    await seen.receive((m) => m === 'order 1');
    node.send(worker, 'stop');
    const got = [await seen.receive(), await seen.receive()].sort();
    expect(got).toEqual(['down Error: boom', 'exit Error: boom']);
    node.exit(watcher, 'kill');
  });
});

describe('isSystemMessage', () => {
  it("is true for the runtime's Down and Exit only, never for a look-alike or a hostile value", async () => {
    const node = track();
    const p = probe(node);
    const dead = node.spawn(() => () => {});
    node.exit(dead, 'kill');
    p.ctx.monitor(dead);
    const down = (await p.receive(isDown)) as Down;
    expect(isSystemMessage(down)).toBe(true);
    p.ctx.trapExits();
    const partner = node.spawn(() => () => {});
    p.ctx.link(partner);
    node.exit(partner, new Error('boom'));
    const exit = await p.receive(isExit);
    expect(isSystemMessage(exit)).toBe(true);
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    for (const v of [{ ...down }, { ref: down.ref, pid: down.pid, reason: 'noproc' }, null, undefined, 'down', 0, revoked.proxy, Object.create(null)]) {
      expect(isSystemMessage(v)).toBe(false);
    }
  });
});
