// The observer's JSON API as the page calls it: same-origin fetches (the session cookie goes along;
// a POST carries the page's Origin, which the server checks). An answer is always a value:
// `{ ok, status, data, error }`, status 0 when the server could not be reached.

async function answer(promise) {
  let res;
  try {
    res = await promise;
  } catch {
    return { ok: false, status: 0, data: null, error: { code: 'offline', message: 'the observer could not be reached' } };
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  const error = !res.ok ? (data && data.error) || { code: String(res.status), message: res.statusText } : null;
  return { ok: res.ok, status: res.status, data, error };
}

/** GET `path` (an `/api/...` path with its query). */
export function get(path) {
  return answer(fetch(path, { headers: { accept: 'application/json' }, credentials: 'same-origin' }));
}

/** POST `body` as JSON to `path`. */
export function post(path, body) {
  return answer(fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, credentials: 'same-origin', body: JSON.stringify(body) }));
}

/** A query string of the set entries of `params` (`?a=1&b=x`), or ''. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const text = q.toString();
  return text === '' ? '' : `?${text}`;
}
