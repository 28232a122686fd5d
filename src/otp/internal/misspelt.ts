import { describe, InvalidArgumentError, readOption } from '../../errors.js';
import { nearMiss } from '../../nearMiss.js';

/**
 * Throws for a key of the spec's own that misspells one of `meantOnes` the spec lacks (`handlecall`,
 * `handle_info`, `stateenter`): such a callback would never be called, or such a flag never read.
 * Other keys of its own (helpers, data) are left alone, as is one beside the callback it resembles.
 * `known`: every key the spec may have, named in the message (`what` names the spec).
 */
export function refuseMisspelt(spec: object, known: readonly string[], meantOnes: readonly string[], what: string, noun: 'callback' | 'key' = 'callback'): void {
  let keys: string[];
  try {
    keys = Object.keys(spec);
  } catch {
    return; // keys that cannot be listed: the callbacks were read, nothing more to say
  }
  for (const key of keys) {
    if (known.includes(key)) continue;
    const meant = nearMiss(key, meantOnes);
    if (meant === undefined || readOption(spec, meant, 'spec') !== undefined) continue;
    const given = readOption(spec, key, 'spec');
    const e = new InvalidArgumentError(`spec.${key}`, `a ${noun}`, given);
    e.message =
      `\`spec.${key}\`: no such ${noun} (${what} has ${known.join(', ')}), got ${describe(given)}; ` +
      `did you mean \`${meant}\`? (misspelt, it would never be ${noun === 'callback' ? 'called' : 'used'})`;
    throw e;
  }
}
