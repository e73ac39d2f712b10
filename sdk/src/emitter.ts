/** Listener signatures by event name. */
export type EventMap = { [event: string]: (...args: any[]) => void };

/**
 * Emitter is a small typed event emitter. A listener that throws does not stop the
 * others nor the SDK: its error is rethrown asynchronously so that it still surfaces.
 */
export class Emitter<Events extends { [K in keyof Events]: (...args: any[]) => void }> {
  private readonly listeners = new Map<keyof Events, Set<(...args: any[]) => void>>();

  /** on adds a listener and returns a function that removes it. */
  on<K extends keyof Events>(event: K, listener: Events[K]): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener);
    return () => this.off(event, listener);
  }

  /** once adds a listener that is removed after its first call. */
  once<K extends keyof Events>(event: K, listener: Events[K]): () => void {
    const wrapper = ((...args: any[]) => {
      off();
      listener(...args);
    }) as Events[K];
    const off = this.on(event, wrapper);
    return off;
  }

  /** off removes one listener, or every listener of `event` when none is given. */
  off<K extends keyof Events>(event: K, listener?: Events[K]): void {
    if (!listener) {
      this.listeners.delete(event);
      return;
    }
    this.listeners.get(event)?.delete(listener);
  }

  /** listenerCount reports how many listeners `event` has. */
  listenerCount<K extends keyof Events>(event: K): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  /** dispatch calls the listeners of `event` in the order they were added. */
  protected dispatch<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): void {
    const set = this.listeners.get(event);
    if (!set || set.size === 0) return;
    for (const listener of [...set]) {
      try {
        listener(...args);
      } catch (err) {
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
  }
}
