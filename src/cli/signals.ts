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
