/**
 * The soak's two counts of what its chaos did to the workers: the lossy workers (whose deaths'
 * events count the messages they dropped) and the chaos's kills (told apart by whether the
 * supervisor had the victim running), kept apart from the soak's run so that each is tested alone.
 */
import type { Context, Init, Node, Pid } from '../index.js';

/**
 * @internal The lossy workers (`soak.lossy.<i>`, under a Supervisor): their child specs, and the
 * messages their deaths dropped, which only the `receiver_exited` events of the
 * `keel.message.dropped` events naming one of them report: by their count, and by the ids of the
 * supervised messages among them (`ids`), each handed to `named` (the ledger). A worker is one of
 * them from its spawn, not from its first turn: restarted under its name, it is sent to by name at
 * once, and the chaos may kill it, messages queued, before its init has run (on a loaded machine a
 * slice expires after the metronome's tick, so the supervisor's restart queues the new worker behind
 * the producers and the chaos). Its death's event must count then too.
 */
export class LossyWorkers {
  /** The messages the deaths of the lossy workers dropped (the events' counts). */
  droppedCount = 0;
  /**
   * Of those, the messages their event did not name by id (its count past its ids). Every message
   * the soak sends a lossy worker is a supervised one, with an id: this must be 0.
   */
  unnamed = 0;
  readonly #pids = new WeakSet<object>();
  readonly #named: (id: unknown) => void;

  /** `named`: takes each message id a lossy worker's death event names (once per naming). */
  constructor(named: (id: unknown) => void = () => undefined) {
    this.#named = named;
  }

  /** Spawns a lossy worker linked to `ctx` under `name` (its child spec's start): one of them from now on. */
  spawn(ctx: Context<any>, init: Init<any>, name: string): Pid {
    const pid = ctx.spawnLink(init, { name });
    this.#pids.add(pid);
    return pid;
  }

  /** A `keel.message.dropped` event (its metadata, and its `count`): counted, its ids named, when it is the death of a lossy worker. */
  dropped(meta: Readonly<Record<string, unknown>>, count: number): void {
    if (meta.reason !== 'receiver_exited' || typeof meta.to !== 'object' || meta.to === null || !this.#pids.has(meta.to)) return;
    this.droppedCount += count;
    const ids: readonly unknown[] = Array.isArray(meta.ids) ? meta.ids : [];
    for (const id of ids) this.#named(id);
    this.unnamed += Math.max(0, count - ids.length);
  }
}

/**
 * @internal The chaos's kills, told apart by what the supervisor had made of the victim. A victim
 * its supervisor had reported running (a `child_started` or `child_restarted` event named its pid)
 * owes one restart. A victim it was still starting (a GenServer worker is registered under its name
 * as it spawns, and its supervisor waits for its init's acknowledgement: on a loaded machine the
 * chaos runs in between) makes that start fail: as OTP, the supervisor reports the failed start
 * (`child_restart_failed`), counts it against its intensity and tries again, and the retry's
 * `child_restarted` is the one restart of both kills. So `restarts` must equal `kills - duringStart`,
 * and `restartsFailed` must equal `duringStart`.
 */
export class ChaosKills {
  /** Every kill. */
  kills = 0;
  /** The kills of a child its supervisor was still starting. */
  duringStart = 0;
  readonly #running = new WeakSet<object>();

  /** A `keel.supervisor.child_started` or `child_restarted` event's metadata: its pid is running, as its supervisor sees it. */
  started(meta: Readonly<Record<string, unknown>>): void {
    if (typeof meta.pid === 'object' && meta.pid !== null) this.#running.add(meta.pid);
  }

  /** Kills `victim`, counting it. */
  strike(node: Node, victim: Pid): void {
    this.kills++;
    if (!this.#running.has(victim)) this.duringStart++;
    node.exit(victim, 'kill');
  }
}
