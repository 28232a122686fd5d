/**
 * A stop signal for a long-running command: aborted by the first SIGINT or SIGTERM. A second one
 * means "now": `onRepeat` runs (a last line, say), then the process exits with 130 or 143, as it
 * would with no listener. `release` removes the listeners.
 */
export function stopOnSignals(onRepeat?: (signal: NodeJS.Signals) => void): { signal: AbortSignal; release: () => void } {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!controller.signal.aborted) {
      controller.abort();
      return;
    }
    onRepeat?.(signal);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    release: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
