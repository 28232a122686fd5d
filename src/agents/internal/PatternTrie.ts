import { InvalidArgumentError } from '../../errors.js';

/**
 * @internal The SignalRouter's subscriptions: a trie over dot-separated segments. A pattern is a
 * path of literal segments, `*` (exactly one segment) and, as its last segment only, `**` (one or
 * more segments: `a.**` matches `a.b` and `a.b.c`, not `a`). Matching a type walks the trie along
 * its segments (a literal child and the `*` child at each step), so its cost follows the length of
 * the type and the wildcards on its path, not the number of subscriptions.
 */

class TrieNode<V> {
  readonly parent: TrieNode<V> | undefined;
  /** The segment that leads here from the parent (`*` for the star child). */
  readonly segment: string;
  /** The pattern this node ends (`a.*.c`), for exact subscriptions. */
  readonly path: string;
  children: Map<string, TrieNode<V>> | undefined = undefined;
  star: TrieNode<V> | undefined = undefined;
  /** Subscriptions whose pattern ends here. */
  exact: Map<string, V> | undefined = undefined;
  /** Subscriptions whose pattern is this path followed by `**`. */
  rest: Map<string, V> | undefined = undefined;

  constructor(parent: TrieNode<V> | undefined, segment: string, path: string) {
    this.parent = parent;
    this.segment = segment;
    this.path = path;
  }

  get empty(): boolean {
    return this.children === undefined && this.star === undefined && this.exact === undefined && this.rest === undefined;
  }
}

/** Splits and checks a subscription pattern; throws `ERR_INVALID_ARGUMENT` naming `argument`. */
export function parsePattern(pattern: unknown, argument = 'pattern'): string[] {
  const expected = "a dotted pattern of non-empty segments: literals, '*' (one segment), and '**' (the rest) as the last segment only";
  if (typeof pattern !== 'string' || pattern === '') throw new InvalidArgumentError(argument, expected, pattern);
  const segments = pattern.split('.');
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    if (s === '') throw new InvalidArgumentError(argument, expected, pattern, 'a segment is empty');
    if (s === '**') {
      if (i !== segments.length - 1) throw new InvalidArgumentError(argument, expected, pattern, "'**' may only be the last segment");
    } else if (s !== '*' && s.includes('*')) {
      throw new InvalidArgumentError(argument, expected, pattern, `wildcards are whole segments ('${s}' mixes '*' with other characters)`);
    }
  }
  return segments;
}

/**
 * @internal Subscriptions keyed by (pattern, key): each pattern holds at most one value per key.
 */
export class PatternTrie<V> {
  readonly #root = new TrieNode<V>(undefined, '', '');
  #nodes = 1;
  #size = 0;

  /** Trie nodes, the root included (1 when empty): pruning keeps it proportional to the patterns. */
  get nodeCount(): number {
    return this.#nodes;
  }

  /** Subscriptions held. */
  get size(): number {
    return this.#size;
  }

  /** Adds or replaces the value of (pattern, key); true when it is new. */
  add(pattern: string, key: string, value: V): boolean {
    const segments = parsePattern(pattern);
    const last = segments[segments.length - 1];
    const doubleStar = last === '**';
    let node = this.#root;
    const n = doubleStar ? segments.length - 1 : segments.length;
    for (let i = 0; i < n; i++) node = this.#child(node, segments[i]!);
    const map = doubleStar ? (node.rest ??= new Map()) : (node.exact ??= new Map());
    const fresh = !map.has(key);
    map.set(key, value);
    if (fresh) this.#size++;
    return fresh;
  }

  /** The node a pattern ends at (without creating any), and whether it ends in `**`. */
  #find(pattern: string): { node: TrieNode<V> | undefined; doubleStar: boolean } {
    const segments = parsePattern(pattern);
    const doubleStar = segments[segments.length - 1] === '**';
    let node: TrieNode<V> | undefined = this.#root;
    const n = doubleStar ? segments.length - 1 : segments.length;
    for (let i = 0; i < n && node !== undefined; i++) {
      const s = segments[i]!;
      node = s === '*' ? node.star : node.children?.get(s);
    }
    return { node, doubleStar };
  }

  /** Removes (pattern, key), pruning the nodes left empty; true when it was there. */
  remove(pattern: string, key: string): boolean {
    const { node, doubleStar } = this.#find(pattern);
    if (node === undefined) return false;
    const map = doubleStar ? node.rest : node.exact;
    if (map === undefined || !map.delete(key)) return false;
    this.#size--;
    if (map.size === 0) {
      if (doubleStar) node.rest = undefined;
      else node.exact = undefined;
    }
    this.#prune(node);
    return true;
  }

  /** The value of (pattern, key), if subscribed. */
  get(pattern: string, key: string): V | undefined {
    const { node, doubleStar } = this.#find(pattern);
    return (doubleStar ? node?.rest : node?.exact)?.get(key);
  }

  /**
   * Calls `visit(value, pattern)` for every subscription matching the type split in `segments`
   * (a key subscribed through several matching patterns is visited once per pattern: the caller
   * dedupes).
   */
  match(segments: readonly string[], visit: (value: V, pattern: string) => void): void {
    // depth first, the literal child before the star child, as a recursion would; with a stack of its
    // own, so a pattern and a type of any number of segments cannot overflow the call stack
    const nodes: TrieNode<V>[] = [this.#root];
    const depths: number[] = [0];
    while (nodes.length > 0) {
      const node = nodes.pop()!;
      const i = depths.pop()!;
      if (i === segments.length) {
        if (node.exact !== undefined) for (const v of node.exact.values()) visit(v, node.path);
        continue;
      }
      if (node.rest !== undefined) {
        const pattern = node.path === '' ? '**' : `${node.path}.**`;
        for (const v of node.rest.values()) visit(v, pattern);
      }
      if (node.star !== undefined) {
        nodes.push(node.star);
        depths.push(i + 1);
      }
      const child = node.children?.get(segments[i]!);
      if (child !== undefined) {
        nodes.push(child);
        depths.push(i + 1);
      }
    }
  }

  #child(node: TrieNode<V>, segment: string): TrieNode<V> {
    const path = node.path === '' ? segment : `${node.path}.${segment}`;
    if (segment === '*') {
      if (node.star === undefined) {
        node.star = new TrieNode(node, '*', path);
        this.#nodes++;
      }
      return node.star;
    }
    let child = node.children?.get(segment);
    if (child === undefined) {
      child = new TrieNode(node, segment, path);
      (node.children ??= new Map()).set(segment, child);
      this.#nodes++;
    }
    return child;
  }

  /** Removes `node` and its ancestors while they hold nothing (never the root). */
  #prune(node: TrieNode<V>): void {
    let n: TrieNode<V> = node;
    while (n.parent !== undefined && n.empty) {
      const parent: TrieNode<V> = n.parent;
      if (n.segment === '*' && parent.star === n) parent.star = undefined;
      else {
        parent.children?.delete(n.segment);
        if (parent.children?.size === 0) parent.children = undefined;
      }
      this.#nodes--;
      n = parent;
    }
  }
}
