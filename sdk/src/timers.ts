/**
 * Timers for the SDK's periodic work (heartbeats).
 *
 * Browsers throttle timers of hidden tabs: at most one wake-up per second at once, and,
 * in Chromium, one per minute for chained timers after five minutes hidden ("intensive
 * throttling"). A presence heartbeat every 10 s would then go out once a minute, which is
 * as old as the server's default reaper lookback (2 × 30 s), and the tab would be reaped.
 * Timers that run inside a dedicated Worker are not subject to that throttling, so in
 * browsers the SDK runs its heartbeat timer in a tiny Worker built from a Blob and falls
 * back to ordinary timers where Workers are not available (Node, a CSP that forbids
 * `blob:` workers, ...).
 */

/** Scheduler is the small timer interface the presence channel uses. */
export interface Scheduler {
  setTimeout(fn: () => void, ms: number): number;
  clearTimeout(handle: number): void;
}

/** mainThreadScheduler uses the global timers (and so fake timers in tests). */
export const mainThreadScheduler: Scheduler = {
  setTimeout: (fn, ms) => setTimeout(fn, ms) as unknown as number,
  clearTimeout: (handle) => clearTimeout(handle as unknown as Parameters<typeof clearTimeout>[0]),
};

const WORKER_SOURCE =
  'var t={};onmessage=function(e){var d=e.data;if(d[0]===1){t[d[1]]=setTimeout(function(){delete t[d[1]];postMessage(d[1])},d[2])}else{clearTimeout(t[d[1]]);delete t[d[1]]}}';

let shared: Scheduler | null | undefined;

/**
 * workerScheduler returns a Scheduler whose timers run in a shared dedicated Worker, or
 * null when no Worker can be started here.
 */
export function workerScheduler(): Scheduler | null {
  if (shared !== undefined) return shared;
  shared = null;
  const g = globalThis as any;
  if (typeof g.Worker !== 'function' || typeof g.Blob !== 'function' || !g.URL?.createObjectURL) {
    return shared;
  }
  try {
    const url = g.URL.createObjectURL(new g.Blob([WORKER_SOURCE], { type: 'text/javascript' }));
    const worker = new g.Worker(url);
    const callbacks = new Map<number, () => void>();
    let next = 1;
    worker.onmessage = (e: { data: number }) => {
      const fn = callbacks.get(e.data);
      callbacks.delete(e.data);
      fn?.();
    };
    worker.onerror = () => {
      // The worker could not run (a CSP, for one): fall back to main-thread timers for the
      // pending callbacks and every later one.
      shared = null;
      const pending = [...callbacks.values()];
      callbacks.clear();
      for (const fn of pending) mainThreadScheduler.setTimeout(fn, 0);
    };
    shared = {
      setTimeout(fn, ms) {
        if (shared === null) return -mainThreadScheduler.setTimeout(fn, ms);
        const id = next++;
        callbacks.set(id, fn);
        worker.postMessage([1, id, ms]);
        return id;
      },
      clearTimeout(handle) {
        if (handle < 0) {
          mainThreadScheduler.clearTimeout(-handle);
          return;
        }
        if (callbacks.delete(handle)) worker.postMessage([0, handle]);
      },
    };
  } catch {
    shared = null;
  }
  return shared;
}
