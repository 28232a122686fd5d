import { createRequire } from 'node:module';
import { MissingPeerError } from '../errors.js';

/** Loads a module by name; the default uses Node's `require` (the lint peers are CommonJS, eslint 10 included). */
export type PeerLoader = (name: string) => unknown;

const requireFromHere = createRequire(import.meta.url);

/** The default loader: `require` resolved from Keel's own folder, as a user's install would. */
export const requirePeer: PeerLoader = (name) => requireFromHere(name);

/**
 * @internal Loads the optional peer `name` for `feature`; a peer that is not installed throws
 * Keel's named `MissingPeerError` (`ERR_PEER_MISSING`) instead of Node's resolution error. Any
 * other failure (a broken install) is rethrown as it is.
 */
export function loadPeer<T>(name: string, feature: string, load: PeerLoader = requirePeer): T {
  try {
    return load(name) as T;
  } catch (e) {
    const code = (e as { code?: unknown } | null | undefined)?.code; // a peer may throw anything, null too
    if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') {
      // only when the peer itself is missing, not a module the peer needs
      const message = String((e as Error).message);
      if (message.includes(`'${name}'`) || message.includes(`"${name}"`)) throw new MissingPeerError(name, feature);
    }
    throw e;
  }
}
