import { describe, expect, it } from 'vitest';
import { componentCaller, componentHandle, type ComponentHandle, unwrapReply } from '../../src/agents/component.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { GenServer, type GenServerSpec } from '../../src/index.js';
import { clockedNode, expectKeelError, failure, thrown, useNodes, watch } from '../support.js';

const track = useNodes();

interface Greeter extends ComponentHandle {
  greet(who: string): string;
}

describe('componentHandle', () => {
  it('finds the component by its name: the new pid after a restart, the last one seen while none is registered', async () => {
    const { node } = clockedNode(track);
    const first = node.spawn(() => () => undefined, { name: 'greeter' });
    const handle = componentHandle<Greeter>(node, 'greeter', first, { greet: (who) => `hello ${who}` });
    expect(handle.name).toBe('greeter');
    expect(handle.pid).toBe(first);
    expect(handle.greet('you')).toBe('hello you');
    // the handle is a plain object: pid and name first, then the methods, all enumerable
    expect(Object.keys(handle)).toEqual(['pid', 'name', 'greet']);

    node.exit(first, 'kill');
    await node.idle();
    expect(node.registry.whereis('greeter')).toBeUndefined();
    expect(handle.pid).toBe(first); // between a crash and the restart: the last pid seen

    const second = node.spawn(() => () => undefined, { name: 'greeter' });
    expect(handle.pid).toBe(second);
    node.exit(second, 'kill');
    await node.idle();
    expect(handle.pid).toBe(second);
  });
});

describe('unwrapReply', () => {
  it('answers a reply as it is and throws an error answered in its place', () => {
    expect(unwrapReply(42)).toBe(42);
    expect(unwrapReply({ error: 'not_found' })).toEqual({ error: 'not_found' });
    const refused = new InvalidArgumentError('request', 'a known request', 'nonsense');
    expect(thrown(() => unwrapReply(refused))).toBe(refused);
  });
});

type Calls = { request: { type: 'good' }; reply: number } | { request: { type: 'bad' }; reply: never } | { request: { type: 'never' }; reply: never };

const server: GenServerSpec<number, Calls> = {
  init: () => 7,
  handleCall(request, _from, state) {
    if (request.type === 'good') return { reply: state, state };
    if (request.type === 'bad') return { reply: new InvalidArgumentError('request', "{ type: 'good' }", request) as never, state };
    return { noreply: true, state }; // 'never': no answer
  },
};

describe('componentCaller', () => {
  it('calls the component by name and throws the typed error it answers in place of a reply', async () => {
    const { node } = clockedNode(track);
    await GenServer.start(node, server, undefined, { name: 'srv' });
    const call = componentCaller<Calls>(node, 'srv');
    expect(await call({ type: 'good' })).toBe(7);
    expectKeelError(await failure(() => call({ type: 'bad' })), 'ERR_INVALID_ARGUMENT', '`request`');
  });

  it("uses its default options unless a call gives its own (timeouts on the node's clock)", async () => {
    const { node, clock } = clockedNode(track);
    await GenServer.start(node, server, undefined, { name: 'srv' });
    const call = componentCaller<Calls>(node, 'srv', { timeout: 100 });
    const byDefault = watch(call({ type: 'never' }));
    const ownTimeout = watch(call({ type: 'never' }, { timeout: 250 }));
    await clock.advance(100);
    expect(byDefault.status).toBe('rejected');
    expectKeelError(byDefault.error, 'ERR_CALL_TIMEOUT');
    expect(ownTimeout.status).toBe('pending');
    await clock.advance(150);
    expect(ownTimeout.status).toBe('rejected');
    expectKeelError(ownTimeout.error, 'ERR_CALL_TIMEOUT');
  });
});
