import { describe, expect, it } from 'vitest';
import { ServiceUnavailableError } from '../../src/index.js';
import { deadLetterAndReport } from '../../src/delivery/deadLetter.js';
import { fakeLogger, useNodes } from '../support.js';

const track = useNodes();

describe('deadLetterAndReport', () => {
  it('answers the entry id of a running queue, and logs nothing', async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const where = await deadLetterAndReport(node, { recipient: 'billing', message: { n: 1 }, reason: 'noproc', metadata: () => ({ id: 'm-1' }) }, 'send m-1');
    expect(where).toEqual({ deadLetterId: '1' });
    expect((await node.deadLetters.get('1'))?.metadata).toEqual({ id: 'm-1' });
    expect([logger.warn.mock.calls, logger.error.mock.calls]).toEqual([[], []]);
  });

  it.each([
    ['services: false', false],
    ['a node that has shut down', true],
  ] as const)('with the queue not running (%s): deadLetterUnavailable, one warning, no error, never a rejection', async (_what, shutDown) => {
    const logger = fakeLogger();
    const node = track({ logger, ...(shutDown ? {} : { services: false }) });
    if (shutDown) await node.shutdown();
    const where = await deadLetterAndReport(node, { recipient: 'billing', message: 'x', reason: 'noproc' }, 'send m-2');
    expect(where).toEqual({ deadLetterUnavailable: true });
    expect(logger.warn.mock.calls).toEqual([['send m-2 failed (noproc) and the dead letter queue is unavailable']]);
    expect(logger.error).not.toHaveBeenCalled();
  });

  it('treats a queue refusal as an error, not as an unavailable queue', async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const where = await deadLetterAndReport(node, { recipient: 'billing', message: { onDone: () => undefined }, reason: 'noproc' }, 'send m-3');
    expect(where).toEqual({ deadLetterUnavailable: true });
    expect(logger.warn).not.toHaveBeenCalled();
    expect(logger.error).toHaveBeenCalledTimes(1);
    expect(logger.error.mock.calls[0]?.[0]).toBe('send m-3: the dead letter queue refused the message (noproc)');
  });

  it.each([
    ['a look-alike object', { code: 'ERR_SERVICE_UNAVAILABLE' }],
    ['a real ServiceUnavailableError', new ServiceUnavailableError('deadLetters', 'disabled', 'deadLetters.add')],
  ])('does not take %s thrown while building the metadata of a running queue for the queue being off: it is a refusal, logged as an error', async (_what, fake) => {
    const logger = fakeLogger();
    const node = track({ logger });
    const where = await deadLetterAndReport(
      node,
      {
        recipient: 'billing',
        message: 'x',
        reason: 'noproc',
        metadata: () => {
          throw fake;
        },
      },
      'send m-4',
    );
    expect(where).toEqual({ deadLetterUnavailable: true });
    expect(logger.warn).not.toHaveBeenCalled();
    expect(logger.error.mock.calls).toEqual([['send m-4: the dead letter queue refused the message (noproc)', fake]]);
    expect(node.deadLetters.available).toBe(true);
    expect((await node.deadLetters.stats()).added).toBe(0);
  });
});
