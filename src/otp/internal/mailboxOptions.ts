import { InvalidArgumentError, readKnownOptions } from '../../errors.js';
import type { MailboxOptions } from '../../runtime/types.js';

const OVERFLOWS: readonly MailboxOptions['overflow'][] = ['reject', 'drop_newest', 'drop_oldest'];

/**
 * @internal A server's `mailbox` start option (the spawn option `mailbox: { capacity, overflow }`,
 * checked as spawn checks it), read once into a plain copy: what is checked is what is used, and a
 * getter is not read again at a restart. Undefined (unbounded) when not given.
 */
export function readMailboxOptions(mailbox: unknown, argument: string): MailboxOptions | undefined {
  if (mailbox === undefined) return undefined;
  if (typeof mailbox !== 'object' || mailbox === null) throw new InvalidArgumentError(argument, '{ capacity, overflow }', mailbox);
  const { capacity, overflow } = readKnownOptions(mailbox, ['capacity', 'overflow'], argument);
  if (typeof capacity !== 'number' || !Number.isSafeInteger(capacity) || capacity < 1) throw new InvalidArgumentError(`${argument}.capacity`, 'a positive integer', capacity);
  if (!OVERFLOWS.includes(overflow as MailboxOptions['overflow'])) throw new InvalidArgumentError(`${argument}.overflow`, "'reject' | 'drop_newest' | 'drop_oldest'", overflow);
  return { capacity, overflow: overflow as MailboxOptions['overflow'] };
}
