// A span processor tests await: it resolves a waiter when a span of a given name ends (no polling, no sleeps).
import type { ReadableSpan, SpanProcessor } from '@opentelemetry/sdk-trace-base';

export class EndWaiter implements SpanProcessor {
  readonly #waiters: { name: string; resolve: () => void }[] = [];
  onStart(): void {}
  onEnd(span: ReadableSpan): void {
    for (const w of this.#waiters.filter((x) => x.name === span.name)) {
      this.#waiters.splice(this.#waiters.indexOf(w), 1);
      w.resolve();
    }
  }
  ended(name: string): Promise<void> {
    return new Promise((resolve) => this.#waiters.push({ name, resolve }));
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
