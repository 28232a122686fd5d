// The StateMachine's state equality: whether a result's next state is a change of state.

/**
 * @internal State equality: structural for arrays and plain objects (as Erlang compares terms), `Object.is`
 * otherwise. A cycle ends the walk: a pair met again while being compared is taken as equal (the
 * rest of the walk decides), so two cyclic states of the same shape are equal, not a stack overflow.
 * The walk is a loop over a stack of its own, so a state nested however deep is compared, not a
 * RangeError. A state that cannot be read (a revoked proxy, a getter or a trap that throws) is
 * compared by identity only: two such are equal only if they are the same value (`Object.is`,
 * checked first), never a crash.
 */
export function equal(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  try {
    return walk(a, b);
  } catch {
    return false;
  }
}

function walk(a0: object, b0: object): boolean {
  const seen = new Map<object, Set<object>>();
  /** Pairs still to compare, flattened: [a, b, a, b, ...]. */
  const todo: unknown[] = [a0, b0];
  while (todo.length > 0) {
    const b = todo.pop();
    const a = todo.pop();
    if (Object.is(a, b)) continue;
    if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
    let pairs = seen.get(a);
    if (pairs?.has(b) === true) continue;
    if (pairs === undefined) seen.set(a, (pairs = new Set()));
    pairs.add(b);
    if (Array.isArray(a)) {
      if (!Array.isArray(b)) return false;
      const n = a.length;
      if (n !== b.length) return false;
      // every index, a hole read as undefined (as Erlang has no holes: [, 1] is not [5, 1])
      for (let i = n - 1; i >= 0; i--) todo.push(a[i], b[i]);
      continue;
    }
    if (Array.isArray(b) || Object.getPrototypeOf(a) !== Object.prototype || Object.getPrototypeOf(b) !== Object.prototype) return false;
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    if (ka.length !== kb.length) return false;
    for (let i = ka.length - 1; i >= 0; i--) {
      const k = ka[i]!;
      if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
      todo.push((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]);
    }
  }
  return true;
}
