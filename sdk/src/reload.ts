/**
 * Page reloads without a flap.
 *
 * A presence channel keeps its connection in sessionStorage (`ReloadRecord`), so that the
 * page loaded by a reload can pass it as `resume` and take the connection over while the
 * server's disconnect grace still holds it: the others see nothing and the state is kept.
 *
 * sessionStorage belongs to the tab, but browsers copy it into a duplicated tab (and into a
 * window opened with `window.open`). Such a copy must not take over its original's
 * connection, which is still in use. So before resuming, a page asks the other pages of its
 * origin "who holds connection X?" over a BroadcastChannel; a page that holds it answers at
 * once. No answer within the probe time means the holder is gone (the reload case). Two
 * channels of one page are told apart without a message. A page stops holding its
 * connection on `pagehide`.
 */

/** ReloadRecord is what a channel keeps in sessionStorage about its connection. */
export interface ReloadRecord {
  roomId: string;
  userId: string;
  connId: string;
  epoch: number;
  state: Record<string, unknown>;
  /**
   * The position of the last event the channel saw (seq, sub) and the history's epoch, so
   * that the next page recovers what the reload missed (revision 3; absent: nothing to
   * recover from).
   */
  seq?: number;
  sub?: number;
  historyEpoch?: string;
}

/** StorageLike is the part of the Web Storage API used here. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

const KEY_PREFIX = 'rtm-sdk:presence:';
const CHANNEL_NAME = 'rtm-sdk:connections';

/**
 * sessionStore returns the page's sessionStorage, or null where there is none (Node, a
 * sandboxed frame, storage disabled: reading the property itself may throw).
 */
export function sessionStore(): StorageLike | null {
  try {
    const s = (globalThis as { sessionStorage?: StorageLike }).sessionStorage;
    return s && typeof s.getItem === 'function' ? s : null;
  } catch {
    return null;
  }
}

/** recordKey is the sessionStorage key of a channel: one per server URL and room. */
export function recordKey(url: string, roomId: string): string {
  return KEY_PREFIX + JSON.stringify([url, roomId]);
}

/** readRecord returns the record under `key`, or null when there is none or it is malformed. */
export function readRecord(store: StorageLike, key: string): ReloadRecord | null {
  let raw: string | null;
  try {
    raw = store.getItem(key);
  } catch {
    return null;
  }
  if (!raw) return null;
  try {
    const r = JSON.parse(raw) as Partial<ReloadRecord>;
    if (
      typeof r.roomId === 'string' &&
      typeof r.userId === 'string' &&
      typeof r.connId === 'string' &&
      r.connId !== '' &&
      typeof r.epoch === 'number' &&
      Number.isFinite(r.epoch) &&
      r.state !== null &&
      typeof r.state === 'object' &&
      !Array.isArray(r.state)
    ) {
      const rec: ReloadRecord = { roomId: r.roomId, userId: r.userId, connId: r.connId, epoch: r.epoch, state: r.state };
      if (typeof r.seq === 'number' && typeof r.sub === 'number' && typeof r.historyEpoch === 'string') {
        rec.seq = r.seq;
        rec.sub = r.sub;
        rec.historyEpoch = r.historyEpoch;
      }
      return rec;
    }
  } catch {
    // not ours, or damaged
  }
  return null;
}

/** writeRecord stores `record` under `key`; a full or disabled storage is ignored. */
export function writeRecord(store: StorageLike, key: string, record: ReloadRecord): void {
  try {
    store.setItem(key, JSON.stringify(record));
  } catch {
    // quota exceeded or storage disabled: the next reload joins fresh
  }
}

/** removeRecord deletes the record under `key`. */
export function removeRecord(store: StorageLike, key: string): void {
  try {
    store.removeItem(key);
  } catch {
    // nothing to do
  }
}

// --- which page holds which connection ---------------------------------------------------

interface ProbeMessage {
  t: 'who' | 'mine';
  id: string;
  connId: string;
}

interface BroadcastLike {
  onmessage: ((e: { data: unknown }) => void) | null;
  postMessage(msg: unknown): void;
  unref?(): void;
}

/** Connections held by this page (connId → number of holders). */
const held = new Map<string, number>();
/** Probes waiting for an answer (probe id → resolve). */
const probes = new Map<string, (elsewhere: boolean) => void>();
let channel: BroadcastLike | null | undefined;

/** broadcast returns this page's BroadcastChannel, created on first use, or null. */
function broadcast(): BroadcastLike | null {
  if (channel !== undefined) return channel;
  channel = null;
  const BC = (globalThis as { BroadcastChannel?: new (name: string) => BroadcastLike }).BroadcastChannel;
  if (typeof BC !== 'function') return channel;
  try {
    const bc = new BC(CHANNEL_NAME);
    bc.unref?.(); // Node: do not keep the process alive
    bc.onmessage = (e) => onMessage(bc, e.data);
    channel = bc;
  } catch {
    channel = null;
  }
  return channel;
}

function onMessage(bc: BroadcastLike, data: unknown): void {
  const m = data as Partial<ProbeMessage> | null;
  if (!m || typeof m.id !== 'string' || typeof m.connId !== 'string') return;
  if (m.t === 'who' && held.has(m.connId)) {
    bc.postMessage({ t: 'mine', id: m.id, connId: m.connId } satisfies ProbeMessage);
  } else if (m.t === 'mine') {
    probes.get(m.id)?.(true);
  }
}

/**
 * holdConnection records that this page uses `connId` (so that it answers probes for it)
 * and returns the function that stops holding it.
 */
export function holdConnection(connId: string): () => void {
  broadcast(); // listen from now on
  held.set(connId, (held.get(connId) ?? 0) + 1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const n = (held.get(connId) ?? 1) - 1;
    if (n > 0) held.set(connId, n);
    else held.delete(connId);
  };
}

/**
 * heldElsewhere reports whether another page of this origin (or this page) holds `connId`.
 * It resolves true as soon as a holder answers, and false after `timeoutMs` without one or
 * at once where pages cannot talk to each other (no BroadcastChannel).
 */
export function heldElsewhere(connId: string, timeoutMs: number): Promise<boolean> {
  if (held.has(connId)) return Promise.resolve(true);
  const bc = broadcast();
  if (!bc) return Promise.resolve(false);
  const id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => done(false), timeoutMs);
    const done = (elsewhere: boolean) => {
      if (!probes.delete(id)) return;
      clearTimeout(timer);
      resolve(elsewhere);
    };
    probes.set(id, done);
    bc.postMessage({ t: 'who', id, connId } satisfies ProbeMessage);
  });
}
