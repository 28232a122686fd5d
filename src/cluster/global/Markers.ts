/**
 * @internal The sweep of the bucket's delete markers. A KV delete leaves a marker on its key (the
 * bucket keeps one message per key, and after a delete that message is the marker), so a bucket
 * whose names and group members come and go keeps one marker per key that ever existed, and every
 * node replays them all when it starts. A marker stays a while (`graceMs`: a watch that lost its
 * connection resumes from the sequence it last saw, and must still find the deletes it missed),
 * then a sweep removes it by purging its key up to its own sequence only: a key written again after
 * the marker keeps that write. Every node sweeps now and then; two sweeps at once purge nothing twice.
 */
import type { KV } from '@nats-io/kv';

/** Purges at most this many keys at once. */
const BATCH = 64;

/** Removes the markers older than `graceMs` (by the server's timestamps, on this clock); resolves with how many went. */
export async function sweepMarkers(kv: KV, purgeThrough: (key: string, revision: number) => Promise<number>, graceMs: number): Promise<number> {
  const before = Date.now() - graceMs;
  const markers: { key: string; revision: number }[] = [];
  const history = await kv.history({ key: '>' });
  try {
    for await (const e of history) {
      if ((e.operation === 'DEL' || e.operation === 'PURGE') && e.created.getTime() <= before) markers.push({ key: e.key, revision: e.revision });
    }
  } finally {
    history.stop();
  }
  let purged = 0;
  for (let i = 0; i < markers.length; i += BATCH) {
    const counts = await Promise.all(markers.slice(i, i + BATCH).map((m) => purgeThrough(m.key, m.revision)));
    for (const n of counts) purged += n;
  }
  return purged;
}
