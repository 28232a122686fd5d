// The StateMachine's state equality: whether a result's next state is a change of state.

/**
 * @internal State equality: structural for arrays and plain objects (as Erlang compares terms), `Object.is`
 * otherwise. A cycle ends the walk: a pair met again while being compared is taken as equal (the
 * rest of the walk decides), so two cyclic states of the same shape are equal, not a stack overflow.
 */
export function equal(a: unknown, b: unknown, seen?: Map<object, Set<object>>): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  seen ??= new Map();
  let pairs = seen.get(a);
  if (pairs?.has(b) === true) return true;
  if (pairs === undefined) seen.set(a, (pairs = new Set()));
  pairs.add(b);
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => equal(x, b[i], seen));
  if (Array.isArray(b) || Object.getPrototypeOf(a) !== Object.prototype || Object.getPrototypeOf(b) !== Object.prototype) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && equal((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], seen));
}
