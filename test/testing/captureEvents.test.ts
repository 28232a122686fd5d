import { describe, expect, it } from 'vitest';
import { Pid } from '../../src/index.js';
import type { TelemetryBus } from '../../src/telemetry/Telemetry.js';
import { captureEvents } from '../../src/testing/index.js';
import { expectKeelError, revokedProxy, thrown, useNodes } from '../support.js';

const track = useNodes();

describe('captureEvents', () => {
  it('records the events whose names start with one of the prefixes, with measurements and metadata', () => {
    const node = track();
    const captured = captureEvents(node, ['keel.test.a.', 'keel.other']);
    node.telemetry.execute('keel.test.a.one', { n: 1 }, { tag: 'x' });
    node.telemetry.execute('keel.test.b.one', { n: 2 }, {});
    node.telemetry.execute('keel.other.thing', { n: 3 }, {});
    node.telemetry.execute('keel.test.a', { n: 4 }, {});
    expect(captured.events).toEqual([
      { event: 'keel.test.a.one', measurements: { n: 1 }, metadata: { tag: 'x' } },
      { event: 'keel.other.thing', measurements: { n: 3 }, metadata: {} },
    ]);
  });

  it("takes a prefix written as telemetry.attach's pattern ('keel.test.*') as that prefix, not one that ends in a star", () => {
    const node = track();
    const captured = captureEvents(node, ['keel.test.*']);
    node.telemetry.execute('keel.test.one', { n: 1 }, {});
    node.telemetry.execute('keel.other', { n: 2 }, {});
    expect(captured.events.map((e) => e.event)).toEqual(['keel.test.one']);
  });

  it('records the runtime’s own events, such as a message dropped for a dead target', () => {
    const node = track();
    const captured = captureEvents(node, ['keel.message.']);
    const ghost = Pid.parse(`<${node.name}.999999.${node.creation}>`);
    node.send(ghost, 'hello?');
    expect(captured.events).toHaveLength(1);
    expect(captured.events[0]?.event).toBe('keel.message.dropped');
    expect(captured.events[0]?.metadata).toMatchObject({ reason: 'noproc', message: 'hello?' });
  });

  it('records only events emitted after it started', () => {
    const node = track();
    node.telemetry.execute('keel.test.early', {}, {});
    const captured = captureEvents(node, ['keel.test.']);
    node.telemetry.execute('keel.test.late', {}, {});
    expect(captured.events.map((e) => e.event)).toEqual(['keel.test.late']);
  });

  it('stops recording at stop()', () => {
    const node = track();
    const captured = captureEvents(node, ['keel.test.']);
    node.telemetry.execute('keel.test.before', {}, {});
    captured.stop();
    node.telemetry.execute('keel.test.after', {}, {});
    expect(captured.events.map((e) => e.event)).toEqual(['keel.test.before']);
  });

  it('leaves nothing listening after stop()', () => {
    const node = track();
    const captured = captureEvents(node, ['keel.test.']);
    expect((node.telemetry as TelemetryBus).isListening('keel.test.x')).toBe(true);
    captured.stop();
    expect((node.telemetry as TelemetryBus).isListening('keel.test.x')).toBe(false);
  });

  it('detaches when its `using` block is left, also by a failed assertion: a capture on a node that outlives the test records nothing more', () => {
    const node = track();
    let kept: { readonly events: unknown[] } | undefined;
    const failure = thrown(() => {
      using captured = captureEvents(node, ['keel.test.']);
      kept = captured;
      node.telemetry.execute('keel.test.inside', {}, {});
      expect(captured.events).toHaveLength(2); // fails, as a test's assertion does
    });
    expect(String(failure)).toContain('expected [ { event: \'keel.test.inside\', …(2) } ] to have a length of 2 but got 1');
    expect((node.telemetry as TelemetryBus).isListening('keel.test.x')).toBe(false);
    node.telemetry.execute('keel.test.after', {}, {});
    expect(kept?.events).toHaveLength(1);
  });

  it('keeps two captures independent', () => {
    const node = track();
    const first = captureEvents(node, ['keel.test.']);
    const second = captureEvents(node, ['keel.test.']);
    node.telemetry.execute('keel.test.both', {}, {});
    first.stop();
    node.telemetry.execute('keel.test.second_only', {}, {});
    expect(first.events.map((e) => e.event)).toEqual(['keel.test.both']);
    expect(second.events.map((e) => e.event)).toEqual(['keel.test.both', 'keel.test.second_only']);
  });

  it('refuses prefixes that are not an array of strings with ERR_INVALID_ARGUMENT, attaching nothing', () => {
    const node = track();
    const invalid = expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' });
    expect(() => captureEvents(node, 'keel.' as never)).toThrow(invalid);
    expect(() => captureEvents(node, null as never)).toThrow(invalid);
    expect(() => captureEvents(node, [1] as never)).toThrow(invalid);
    expect((node.telemetry as TelemetryBus).isListening('keel.x')).toBe(false);
  });

  it('refuses an empty list of prefixes with ERR_INVALID_ARGUMENT: a capture of nothing recorded nothing, and every assertion that no event came passed', () => {
    const node = track();
    expect(() => captureEvents(node, [])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('at least one') as unknown }));
    // '' is a prefix of every name: asked for, it records everything
    using all = captureEvents(node, ['']);
    node.telemetry.execute('keel.test.any', {}, {});
    expect(all.events.map((e) => e.event)).toEqual(['keel.test.any']);
  });

  it('refuses a node that is none with ERR_INVALID_ARGUMENT naming `node`, as probe and expectNoLeaks do', () => {
    // before: a TypeError (reading telemetry of undefined, or a revoked proxy's), no Keel error
    for (const notANode of [undefined, null, {}, { telemetry: {} }, revokedProxy()]) {
      const e = thrown(() => captureEvents(notANode as never, ['keel.']));
      expectKeelError(e, 'ERR_INVALID_ARGUMENT', '`node`');
    }
  });
});
