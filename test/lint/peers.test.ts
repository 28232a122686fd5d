import { describe, expect, it } from 'vitest';
import { isKeelError } from '../../src/index.js';
import plugin, { recommendedRules, rules } from '../../src/lint/index.js';
import { loadPeer } from '../../src/lint/peers.js';

const notFound = (name: string) => (): never => {
  throw Object.assign(new Error(`Cannot find module '${name}'`), { code: 'MODULE_NOT_FOUND' });
};

describe('loadPeer', () => {
  it('throws MissingPeerError naming the peer and the feature when the peer is not installed', () => {
    let err: unknown;
    try {
      loadPeer('@typescript-eslint/utils', 'keel/eslint-plugin', notFound('@typescript-eslint/utils'));
    } catch (e) {
      err = e;
    }
    expect(isKeelError(err, 'ERR_PEER_MISSING')).toBe(true);
    expect((err as Error).message).toBe("keel/eslint-plugin needs the optional peer dependency '@typescript-eslint/utils': npm install @typescript-eslint/utils");
  });

  it('rethrows when a module the peer needs is missing (a broken install is not a missing peer)', () => {
    expect(() => loadPeer('eslint', 'keel audit', notFound('espree'))).toThrow("Cannot find module 'espree'");
  });

  it('rethrows what a peer that fails to load threw as it is, a thrown null or undefined too (not a TypeError of its own)', () => {
    for (const value of [null, undefined, 'broken']) {
      let err: unknown = 'nothing thrown';
      try {
        loadPeer('eslint', 'keel audit', () => {
          throw value;
        });
      } catch (e) {
        err = e;
      }
      expect(err).toBe(value);
    }
  });
});

describe('keel/eslint-plugin', () => {
  it('is a flat-config plugin whose recommended config registers it as `keel` with every rule on', () => {
    expect(plugin.meta).toEqual({ name: 'keel/eslint-plugin', version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
    expect(plugin.configs.recommended.plugins.keel).toBe(plugin);
    expect(Object.keys(plugin.configs.recommended.rules).sort()).toEqual(Object.keys(rules).map((r) => `keel/${r}`).sort());
    expect(recommendedRules['keel/no-raw-send']).toBe('warn');
  });

  it('says in each rule whether it has an autofix, a suggestion or neither, as its docs page does', () => {
    const kinds = Object.fromEntries(
      Object.entries(rules).map(([name, rule]) => [name, rule.meta.fixable !== undefined ? 'autofix' : rule.meta.hasSuggestions === true ? 'suggestion' : 'neither']),
    );
    expect(kinds).toEqual({
      'no-raw-send': 'suggestion',
      'no-unmanaged-monitor': 'neither',
      'no-sleep-in-tests': 'neither',
      'no-self-call': 'neither',
      'handle-unexpected-messages': 'autofix',
    });
  });
});

describe('docs/lint', () => {
  it('has a page per rule that states the same fix kind as the rule', async () => {
    const fs = await import('node:fs');
    for (const [name, rule] of Object.entries(rules)) {
      const page = fs.readFileSync(new URL(`../../docs/lint/${name}.md`, import.meta.url), 'utf8');
      const kind = rule.meta.fixable !== undefined ? 'autofix' : rule.meta.hasSuggestions === true ? 'suggestion' : 'neither';
      expect(page, name).toMatch(new RegExp(`^\\*\\*Fix:\\*\\* ${kind}\\b`, 'm'));
    }
  });

  it('holds the page each rule links as meta.docs.url, a file shipped in the package', async () => {
    const fs = await import('node:fs');
    const { fileURLToPath } = await import('node:url');
    const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { files: string[] };
    expect(pkg.files).toContain('docs');
    for (const [name, rule] of Object.entries(rules)) {
      const url = rule.meta.docs?.url ?? '';
      expect(url, name).toBe(new URL(`../../docs/lint/${name}.md`, import.meta.url).href);
      expect(fs.existsSync(fileURLToPath(url)), name).toBe(true);
    }
  });
});
