/**
 * The observer's page: static files under `assets/` (index.html, app.css, app.js and the modules it
 * imports), read once when an observer starts and served as they are. No build step, no framework,
 * no dependency: the build script copies the folder next to the compiled code (`dist/observer/assets`).
 * The script sets every value with `textContent`, never as markup.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export { CSP } from './http.js';

/** One static file of the page. */
export interface Asset {
  readonly type: string;
  readonly body: Buffer;
}

/** The page's files by URL path (`/`, `/app.js`, `/app.css`, `/pages/tree.js`, ...). */
export interface PageAssets {
  /** The HTML page (`index.html`), or undefined when the assets are missing (a build that did not copy them). */
  readonly html: Buffer | undefined;
  readonly files: ReadonlyMap<string, Asset>;
}

const TYPES: Readonly<Record<string, string>> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** The folder the page's files are read from: `assets/` beside this module, in src/ and in dist/ alike. */
export const ASSETS_DIR = fileURLToPath(new URL('./assets/', import.meta.url));

/** Reads every file of the page (a few dozen KiB) from `dir`; empty when the folder is missing. */
export function loadAssets(dir: string = ASSETS_DIR): PageAssets {
  const files = new Map<string, Asset>();
  let html: Buffer | undefined;
  const visit = (folder: string): void => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const full = join(folder, entry.name);
      if (entry.isDirectory()) {
        visit(full);
        continue;
      }
      const path = '/' + relative(dir, full).split(sep).join('/');
      if (path === '/index.html') {
        html = readFileSync(full);
        continue;
      }
      const type = TYPES[extname(entry.name)];
      if (type !== undefined) files.set(path, { type, body: readFileSync(full) });
    }
  };
  try {
    visit(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  return { html, files };
}
