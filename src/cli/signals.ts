/** The exit code of a process ended by `signal` with no listener (128 + its number). */
const EXIT_CODES: Readonly<Record<string, number>> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * A stop signal for a long-running command: aborted by the first SIGINT, SIGTERM or SIGHUP (the
 * terminal closed: without a listener the process would die at once, its temporary files left). A
 * second one means "now": `onRepeat` runs (a last line, say), then the process exits with 130, 143
 * or 129, as it would with no listener. `release` removes the listeners.
 */
export function stopOnSignals(onRepeat?: (signal: NodeJS.Signals) => void): { signal: AbortSignal; release: () => void } {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!controller.signal.aborted) {
      controller.abort();
      return;
    }
    onRepeat?.(signal);
    process.exit(EXIT_CODES[signal] ?? 143);
  };
  for (const s of STOP_SIGNALS) process.on(s, onSignal);
  return {
    signal: controller.signal,
    release: () => {
      for (const s of STOP_SIGNALS) process.off(s, onSignal);
    },
  };
}

/**
 * The load window of a soak or an overload run, on the node's clock: when its load started, when it
 * ends (its duration after the start, or earlier when a stop signal cut it short), and whether it
 * was. A stop once the load is over (while the run drains) cuts nothing short.
 */
export class LoadWindow {
  /** When the load started, on the node's clock (-1 before {@link LoadWindow.start}). */
  started = -1;
  /** When the load ends, after its start: its duration, or the moment it was stopped. */
  endMs: number;
  interrupted = false;
  #ended = false;
  readonly #now: () => number;
  readonly #stop: AbortSignal | undefined;
  readonly #onStop = (): void => this.interrupt();

  /** Watches `stop` (if given) until {@link LoadWindow.release}: its abort interrupts the load. */
  constructor(durationMs: number, now: () => number, stop: AbortSignal | undefined) {
    this.endMs = durationMs;
    this.#now = now;
    this.#stop = stop;
    if (stop?.aborted === true) this.interrupt();
    else stop?.addEventListener('abort', this.#onStop, { once: true });
  }

  /** Stops watching the stop signal (the run is over). */
  release(): void {
    this.#stop?.removeEventListener('abort', this.#onStop);
  }

  start(): void {
    this.started = this.#now();
  }

  /** How long the load has run (ms). */
  elapsed(): number {
    return this.#now() - this.started;
  }

  /** The load is over: a stop from now on changes nothing. Answers how long it ran (ms). */
  end(): number {
    this.#ended = true;
    return this.elapsed();
  }

  interrupt(): void {
    if (this.interrupted || this.#ended) return;
    this.interrupted = true;
    this.endMs = this.started < 0 ? 0 : Math.min(this.endMs, this.elapsed());
  }
}
