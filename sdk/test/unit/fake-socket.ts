import { vi } from 'vitest';
import { RealtimeClient, type RealtimeClientOptions, type SocketFactoryOptions, type SocketLike } from '../../src/index.js';
import type { PresenceConnection, PresenceEvent, PresenceSnapshot } from '../../src/protocol.js';

/** One packet the client sent: event, payload and acknowledgement callback. */
export interface Sent {
  event: string;
  payload: any;
  ack?: (response: unknown) => void;
  acked: boolean;
}

type Handlers = Map<string, Set<(...args: any[]) => void>>;

function addHandler(handlers: Handlers, event: string, fn: (...args: any[]) => void): void {
  if (!handlers.has(event)) handlers.set(event, new Set());
  handlers.get(event)!.add(fn);
}

function fireHandlers(handlers: Handlers, event: string, args: any[]): void {
  for (const fn of [...(handlers.get(event) ?? [])]) fn(...args);
}

/** FakeManager stands in for the socket.io Manager (`socket.io`): reconnection events. */
export class FakeManager {
  readonly opts: { transports: Array<'websocket' | 'polling'> | undefined };
  readonly engine: { close: () => void };
  private readonly handlers: Handlers = new Map();

  constructor(socket: FakeSocket, transports: Array<'websocket' | 'polling'> | undefined) {
    this.opts = { transports };
    this.engine = { close: () => socket.drop('forced close') };
  }

  on(event: string, fn: (...args: any[]) => void): this {
    addHandler(this.handlers, event, fn);
    return this;
  }

  /** fire delivers a Manager event (reconnect_attempt, reconnect_failed) to the client. */
  fire(event: string, ...args: any[]): void {
    fireHandlers(this.handlers, event, args);
  }
}

/**
 * FakeSocket stands in for a socket.io-client 4.x Socket. The test plays the server: it
 * connects and drops the socket, answers what the client sent and pushes events.
 */
let socketIds = 0;

export class FakeSocket implements SocketLike {
  connected = false;
  /** socket.io-client's `id`: a new one on every connect, none while disconnected. */
  id: string | undefined = undefined;
  /** socket.io-client's `active`: false once the server refused the CONNECT. */
  active = true;
  opened = 0;
  readonly sent: Sent[] = [];
  readonly io: FakeManager;
  private readonly handlers: Handlers = new Map();

  constructor(readonly url: string, readonly options: SocketFactoryOptions) {
    this.io = new FakeManager(this, options.transports ? [...options.transports] : undefined);
  }

  on(event: string, fn: (...args: any[]) => void): this {
    addHandler(this.handlers, event, fn);
    return this;
  }

  off(event: string, fn?: (...args: any[]) => void): this {
    if (fn) this.handlers.get(event)?.delete(fn);
    else this.handlers.delete(event);
    return this;
  }

  /** emit is what the client sends to the server. */
  emit(event: string, ...args: any[]): this {
    const ack = typeof args[args.length - 1] === 'function' ? args.pop() : undefined;
    this.sent.push({ event, payload: args[0], ack, acked: false });
    return this;
  }

  open(): this {
    this.opened++;
    this.active = true;
    return this;
  }

  close(): this {
    if (this.connected) {
      this.connected = false;
      this.id = undefined;
      this.fire('disconnect', 'io client disconnect');
    }
    return this;
  }

  /** fire delivers a socket event (connect, disconnect, server events) to the client. */
  fire(event: string, ...args: any[]): void {
    fireHandlers(this.handlers, event, args);
  }

  /** refuse answers the CONNECT with CONNECT_ERROR, as the server does for a bad token. */
  refuse(message = 'unauthorized'): void {
    this.active = false;
    this.fire('connect_error', new Error(message));
  }

  /** auth runs the client's auth callback as socket.io-client does before each CONNECT. */
  auth(): Record<string, unknown> | undefined {
    let data: Record<string, unknown> | undefined;
    this.options.auth?.((d) => {
      data = d;
    });
    return data;
  }

  connect(): void {
    this.connected = true;
    this.id = `sock-${++socketIds}`;
    this.fire('connect');
  }

  drop(reason = 'transport close'): void {
    this.connected = false;
    this.id = undefined;
    this.fire('disconnect', reason);
  }

  /** push sends a presence event to the client. */
  push(event: PresenceEvent): void {
    this.fire('presence:event', event);
  }

  /** all returns the packets sent with `event`. */
  all(event: string): Sent[] {
    return this.sent.filter((s) => s.event === event);
  }

  /** last returns the last packet sent with `event`. */
  last(event: string): Sent {
    const list = this.all(event);
    const s = list[list.length - 1];
    if (!s) throw new Error(`nothing sent with ${event}; sent: ${this.sent.map((x) => x.event).join(', ')}`);
    return s;
  }

  /** pending returns the packets sent with `event` that have no answer yet. */
  pending(event: string): Sent[] {
    return this.all(event).filter((s) => !s.acked);
  }

  /** reply answers the oldest unanswered packet sent with `event`. */
  reply(event: string, response: unknown): Sent {
    const s = this.pending(event)[0];
    if (!s) throw new Error(`no unanswered ${event}; sent: ${this.sent.map((x) => x.event).join(', ')}`);
    s.acked = true;
    s.ack?.(response);
    return s;
  }
}

/** setup creates a client on a FakeSocket. */
export function setup(options: RealtimeClientOptions = {}): { client: RealtimeClient; socket: FakeSocket } {
  let socket!: FakeSocket;
  const client = new RealtimeClient('http://server.test', {
    autoConnect: false,
    ...options,
    socketFactory: (url, opts) => {
      socket = new FakeSocket(url, opts);
      return socket;
    },
  });
  return { client, socket };
}

/** conn builds a connection of a snapshot. */
export function conn(connId: string, userId: string, state: Record<string, unknown> = {}, epoch = 1): PresenceConnection {
  return { connId, userId, state, epoch, lastSeenMs: 1_700_000_000_000 };
}

/** snapshot builds a snapshot of `room`. */
export function snapshot(room: string, seq: number, connections: PresenceConnection[]): PresenceSnapshot {
  return { roomId: room, seq, members: [...new Set(connections.map((c) => c.userId))], connections };
}

/** joinAck builds a successful presence:join acknowledgement. */
export function joinAck(connId: string, epoch: number, snap: PresenceSnapshot) {
  return { ok: true, self: { connId, epoch }, snapshot: snap };
}

/** event builds a presence event. */
export function event(
  type: PresenceEvent['type'],
  seq: number,
  connId: string,
  userId: string,
  extra: Partial<PresenceEvent> = {},
): PresenceEvent {
  return {
    type,
    roomId: 'room-1',
    seq,
    userId,
    connId,
    ts: 1_700_000_000_000 + seq,
    count: { connections: 1, members: 1 },
    ...(type === 'leave' ? { reason: 'leave' as const } : { state: {}, epoch: 1 }),
    ...extra,
  };
}

/** flush lets every pending promise callback run (setImmediate is left real by useFakeTimers). */
export async function flush(): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
}

/** useFakeTimers installs fake timers, Date included. */
export function useFakeTimers(): void {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
}

/**
 * tick advances fake time by `ms`, lets promise callbacks run, then one more millisecond
 * for the zero-delay timers they set (fake timers run those 1 ms later inside a tick).
 */
export async function tick(ms: number): Promise<void> {
  await vi.advanceTimersByTimeAsync(ms);
  await flush();
  await vi.advanceTimersByTimeAsync(1);
  await flush();
}
