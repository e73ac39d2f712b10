// Helpers shared by the integration tests: unique room names and polling
// for a condition.

let counter = 0;

/** unique returns `name` made unique per process and call (room and topic ids). */
export function unique(name: string): string {
  return `${name}-${process.pid}-${Date.now().toString(36)}-${++counter}`;
}

/** waitFor polls `check` until it returns a truthy value, or throws after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | null | false,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
