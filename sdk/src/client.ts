import io from 'socket.io-client';
import { Emitter } from './emitter.js';
import { AckTimeoutError, RealtimeError } from './errors.js';
import { PresenceChannel, type PresenceChannelOptions } from './presence.js';
import type { ChatMessage, ClientToServerEvents, PresenceEvent } from './protocol.js';
import { workerScheduler, type Scheduler } from './timers.js';

/**
 * SocketLike is the part of a socket.io-client 2.x `Socket` the SDK uses. Tests pass a
 * fake through {@link RealtimeClientOptions.socketFactory}.
 */
export interface SocketLike {
  readonly connected: boolean;
  on(event: string, listener: (...args: any[]) => void): unknown;
  off(event: string, listener?: (...args: any[]) => void): unknown;
  emit(event: string, ...args: any[]): unknown;
  open(): unknown;
  close(): unknown;
  /** The socket.io Manager (absent on fakes). */
  io?: {
    opts?: { query?: Record<string, string> | string; transports?: Array<'websocket' | 'polling'> };
    engine?: EngineLike | null;
  };
}

/** The part of an engine.io-client 3.x Socket the SDK uses. */
export interface EngineLike {
  readyState?: string;
  /** The server's ping interval in ms (from the handshake). */
  pingInterval?: number;
  ping?(): void;
  close(): void;
}

/** Options passed to the socket factory: those of socket.io-client 2.x's `io()`. */
export interface SocketFactoryOptions {
  path: string;
  transports?: Array<'websocket' | 'polling'>;
  query: Record<string, string>;
  forceNew: true;
  autoConnect: false;
  reconnection: boolean;
  reconnectionAttempts: number;
  reconnectionDelay: number;
  reconnectionDelayMax: number;
  randomizationFactor: number;
  timeout: number;
  withCredentials?: boolean;
}

/** SocketFactory creates the socket a client uses. */
export type SocketFactory = (url: string, options: SocketFactoryOptions) => SocketLike;

/** Options of {@link RealtimeClient}. */
export interface RealtimeClientOptions {
  /**
   * JWT sent as the handshake query parameter `token`. A function is called again before
   * every reconnection attempt, so it can return a fresh token.
   */
  token?: string | (() => string | undefined);
  /**
   * Engine.IO transports, in the order tried: `['websocket']`, `['polling']`, or
   * `['polling', 'websocket']` (polling, then an upgrade). Default: WebSocket, and when a
   * connection attempt fails, the next attempt uses polling with an upgrade (then WebSocket
   * again, and so on), for networks where WebSocket does not get through.
   */
  transports?: Array<'websocket' | 'polling'>;
  /** Socket.IO path. Default `/socket.io`. */
  path?: string;
  /** Extra handshake query parameters. */
  query?: Record<string, string>;
  /** Reconnect after an unexpected disconnect. Default true. */
  reconnection?: boolean;
  /** Reconnection attempts before giving up (`reconnect_failed`). Default Infinity. */
  reconnectionAttempts?: number;
  /** First reconnection delay, doubled on each attempt. Default 1000 ms. */
  reconnectionDelayMs?: number;
  /** Upper bound of the reconnection delay. Default 5000 ms. */
  reconnectionDelayMaxMs?: number;
  /** Jitter applied to reconnection delays, 0 to 1. Default 0.5. */
  randomizationFactor?: number;
  /** Time allowed for one connection attempt. Default 20000 ms. */
  connectTimeoutMs?: number;
  /** Default time allowed for an acknowledgement in {@link RealtimeClient.emit}. Default 10000 ms. */
  ackTimeoutMs?: number;
  /** Connect from the constructor. Default true; otherwise call {@link RealtimeClient.connect}. */
  autoConnect?: boolean;
  /** Send cookies with cross-origin polling requests (socket.io's default: true). */
  withCredentials?: boolean;
  /**
   * Keep Engine.IO pings on time while the tab is hidden (see the README): a Worker timer
   * sends the ping the browser's throttled timers would send late. Default true; it only
   * runs where a Worker can be started.
   */
  backgroundKeepalive?: boolean;
  /** Creates the socket. Default: socket.io-client 2.5.0's `io()`. */
  socketFactory?: SocketFactory;
}

/** Options of one {@link RealtimeClient.emit} call. */
export interface EmitOptions {
  /** Time allowed for the acknowledgement; 0 waits forever. Default: the client's `ackTimeoutMs`. */
  timeoutMs?: number;
}

/** Connection status of a {@link RealtimeClient}. */
export type ConnectionStatus = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'disconnected';

/** Events of a {@link RealtimeClient} besides the server's own. */
export interface RealtimeClientEvents {
  /** The socket is connected (first time or again). */
  connect: () => void;
  /** The socket is gone; `reason` is socket.io's ("transport close", "ping timeout", "io client disconnect", ...). */
  disconnect: (reason: string) => void;
  /** A reconnection attempt starts (1, 2, ...). */
  reconnecting: (attempt: number) => void;
  /** The socket is connected again after an unexpected disconnect; emitted right after `connect`. */
  reconnect: (attempt: number) => void;
  /** A connection attempt failed. */
  connect_error: (error: RealtimeError) => void;
  /** Reconnection gave up after `reconnectionAttempts`. */
  reconnect_failed: () => void;
  /** The connection status changed. */
  status: (status: ConnectionStatus) => void;
  /** A presence event of any room (channels apply them for you). */
  'presence:event': (event: PresenceEvent) => void;
  /** A chat message of the room this client joined. */
  'chat:message': (message: ChatMessage) => void;
}

type AnyListener = (...args: any[]) => void;

/** Names the client emits itself; any other name is a server event. */
const LOCAL_EVENTS = new Set<string>([
  'connect',
  'disconnect',
  'reconnecting',
  'reconnect',
  'connect_error',
  'reconnect_failed',
  'status',
]);

/** Ack payload type of a known client-to-server event. */
export type AckOf<E> = E extends keyof ClientToServerEvents ? ClientToServerEvents[E][1] : any;
/** Payload type of a known client-to-server event. */
export type PayloadOf<E> = E extends keyof ClientToServerEvents ? ClientToServerEvents[E][0] : unknown;

interface Pending {
  event: string;
  reject: (err: RealtimeError) => void;
  timer?: ReturnType<typeof setTimeout>;
}

const WEBSOCKET_FIRST: Array<'websocket' | 'polling'> = ['websocket'];
const POLLING_THEN_UPGRADE: Array<'websocket' | 'polling'> = ['polling', 'websocket'];

const defaultFactory: SocketFactory = (url, options) => io(url, options) as unknown as SocketLike;

/**
 * RealtimeClient owns one Socket.IO connection to the server: it connects, reconnects,
 * sends events with promised acknowledgements, and hands out presence channels.
 */
export class RealtimeClient extends Emitter<RealtimeClientEvents & { [event: string]: AnyListener }> {
  /** The server URL. */
  readonly url: string;
  /** The underlying socket.io-client socket (for advanced use; `socket.io` is its Manager). */
  readonly socket: SocketLike;

  private readonly ackTimeoutMs: number;
  private readonly tokenSource?: RealtimeClientOptions['token'];
  private readonly forwarded = new Set<string>();
  private readonly pending = new Set<Pending>();
  private readonly channels = new Map<string, PresenceChannel>();
  private statusValue: ConnectionStatus = 'idle';
  private everConnected = false;
  private dropped = false;
  private reconnectAttempt = 0;
  private readonly reconnection: boolean;
  private connectWaiters: Array<{ resolve: () => void; reject: (err: RealtimeError) => void }> = [];
  private readonly keepaliveScheduler: Scheduler | null;
  private keepaliveTimer: number | undefined;
  private lastPingAt = 0;
  private readonly autoTransports: boolean;
  private failedAttempts = 0;

  constructor(url: string, options: RealtimeClientOptions = {}) {
    super();
    this.url = url;
    this.ackTimeoutMs = options.ackTimeoutMs ?? 10_000;
    this.tokenSource = options.token;
    this.reconnection = options.reconnection ?? true;
    const query: Record<string, string> = { ...(options.query ?? {}) };
    const token = this.currentToken();
    if (token) query.token = token;
    const factoryOptions: SocketFactoryOptions = {
      path: options.path ?? '/socket.io',
      query,
      forceNew: true,
      autoConnect: false,
      reconnection: this.reconnection,
      reconnectionAttempts: options.reconnectionAttempts ?? Infinity,
      reconnectionDelay: options.reconnectionDelayMs ?? 1000,
      reconnectionDelayMax: options.reconnectionDelayMaxMs ?? 5000,
      randomizationFactor: options.randomizationFactor ?? 0.5,
      timeout: options.connectTimeoutMs ?? 20_000,
    };
    this.autoTransports = !options.transports;
    factoryOptions.transports = options.transports ? [...options.transports] : [...WEBSOCKET_FIRST];
    if (options.withCredentials !== undefined) factoryOptions.withCredentials = options.withCredentials;
    this.socket = (options.socketFactory ?? defaultFactory)(url, factoryOptions);
    this.keepaliveScheduler = (options.backgroundKeepalive ?? true) ? workerScheduler() : null;
    this.wireSocket();
    if (options.autoConnect ?? true) void this.connect().catch(() => undefined);
  }

  /** The connection status. */
  get status(): ConnectionStatus {
    return this.statusValue;
  }

  /** connected reports whether the socket is connected now. */
  get connected(): boolean {
    return this.socket.connected;
  }

  /**
   * connect opens the connection (it is a no-op when already connected or connecting) and
   * resolves once connected. It rejects with `unauthorized` when the server refuses the
   * socket, with `connect_failed` when reconnection gives up (or, with reconnection off,
   * when the attempt fails), and with `closed` when {@link disconnect} is called first.
   */
  connect(): Promise<void> {
    if (this.socket.connected) return Promise.resolve();
    const done = new Promise<void>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    if (this.statusValue !== 'connecting' && this.statusValue !== 'reconnecting') {
      this.dropped = false;
      this.setStatus('connecting');
      this.refreshToken();
      this.pickTransports();
      this.socket.open();
    }
    return done;
  }

  /**
   * disconnect closes the connection for good (no reconnection). Joined presence channels
   * are left first (without waiting for the acknowledgement), so other members see the
   * `leave` at once instead of after the server's disconnect grace. Pending acknowledgements
   * reject with `disconnected`.
   */
  disconnect(): void {
    for (const channel of this.channels.values()) channel.detach();
    this.dropped = false;
    this.socket.close();
    this.rejectPending('disconnected', 'the client disconnected');
    this.setStatus('disconnected');
    this.settleConnect(new RealtimeError('closed', 'the client was disconnected before it connected'));
  }

  /**
   * emit sends `event` with `payload` and resolves with the acknowledgement. It rejects with
   * a {@link RealtimeError}: the protocol code for an `{ ok: false }` acknowledgement,
   * `timeout` ({@link AckTimeoutError}) when none came within `timeoutMs`, `disconnected`
   * when the socket is not connected or drops first (nothing is queued for later).
   */
  emit<E extends string>(event: E, payload?: PayloadOf<E>, options: EmitOptions = {}): Promise<AckOf<E>> {
    const timeoutMs = options.timeoutMs ?? this.ackTimeoutMs;
    return new Promise<AckOf<E>>((resolve, reject) => {
      if (!this.socket.connected) {
        reject(new RealtimeError('disconnected', `cannot send ${event}: not connected`, { event }));
        return;
      }
      const pending: Pending = { event, reject };
      if (timeoutMs > 0) {
        pending.timer = setTimeout(() => {
          this.pending.delete(pending);
          reject(new AckTimeoutError(event, timeoutMs));
        }, timeoutMs);
      }
      this.pending.add(pending);
      const onAck = (ack: unknown) => {
        if (!this.pending.delete(pending)) return;
        if (pending.timer !== undefined) clearTimeout(pending.timer);
        if (ack !== null && typeof ack === 'object' && (ack as { ok?: unknown }).ok === false) {
          reject(RealtimeError.fromAck(ack as any, event));
        } else {
          resolve(ack as AckOf<E>);
        }
      };
      if (payload === undefined) this.socket.emit(event, onAck);
      else this.socket.emit(event, payload, onAck);
    });
  }

  /**
   * send sends `event` without asking for an acknowledgement (the server processes it all
   * the same). It reports whether the socket was connected.
   */
  send<E extends string>(event: E, payload?: PayloadOf<E>): boolean {
    if (!this.socket.connected) return false;
    if (payload === undefined) this.socket.emit(event);
    else this.socket.emit(event, payload);
    return true;
  }

  /**
   * on listens to a connection event ({@link RealtimeClientEvents}) or to any event the
   * server sends (`presence:event`, `chat:message`, your own modules' events). It returns a
   * function that removes the listener.
   */
  override on<K extends keyof RealtimeClientEvents>(event: K, listener: RealtimeClientEvents[K]): () => void;
  override on(event: string, listener: AnyListener): () => void;
  override on(event: string, listener: AnyListener): () => void {
    this.forward(event);
    return super.on(event, listener);
  }

  override once<K extends keyof RealtimeClientEvents>(event: K, listener: RealtimeClientEvents[K]): () => void;
  override once(event: string, listener: AnyListener): () => void;
  override once(event: string, listener: AnyListener): () => void {
    this.forward(event);
    return super.once(event, listener);
  }

  /**
   * presence returns the presence channel of `roomId` on this connection, creating it on
   * first use (later calls return the same channel and ignore `options`). The server allows
   * one presence room per connection: use one client per room you need at once.
   */
  presence(roomId: string, options: PresenceChannelOptions): PresenceChannel {
    let channel = this.channels.get(roomId);
    if (!channel) {
      channel = new PresenceChannel(this, roomId, options);
      this.channels.set(roomId, channel);
    }
    return channel;
  }

  /**
   * dropTransport closes the underlying Engine.IO connection as a network failure would;
   * the client then reconnects and its presence channels resume. For demos and tests.
   */
  dropTransport(): void {
    this.socket.io?.engine?.close();
  }

  /** @internal Reports whether another channel of this client is joined (or joining). */
  otherChannelActive(channel: PresenceChannel): boolean {
    for (const c of this.channels.values()) {
      if (c !== channel && c.active) return true;
    }
    return false;
  }

  private forward(event: string): void {
    if (LOCAL_EVENTS.has(event) || this.forwarded.has(event)) return;
    this.forwarded.add(event);
    this.socket.on(event, (...args: any[]) => this.dispatch(event, ...(args as any)));
  }

  private wireSocket(): void {
    const s = this.socket;
    s.on('connect', () => {
      const reconnected = this.dropped;
      const attempt = this.reconnectAttempt;
      this.dropped = false;
      this.reconnectAttempt = 0;
      this.failedAttempts = 0;
      this.everConnected = true;
      this.setStatus('connected');
      this.lastPingAt = Date.now();
      this.scheduleKeepalive();
      this.settleConnect();
      this.dispatch('connect');
      if (reconnected) this.dispatch('reconnect', attempt);
    });
    s.on('disconnect', (reason: string) => {
      this.rejectPending('disconnected', `disconnected (${reason})`);
      const willReconnect =
        reason !== 'io client disconnect' && reason !== 'io server disconnect' && this.statusValue !== 'disconnected';
      this.dropped = willReconnect && this.everConnected;
      this.setStatus(willReconnect ? 'reconnecting' : 'disconnected');
      this.dispatch('disconnect', reason);
    });
    s.on('reconnect_attempt', () => {
      this.refreshToken();
      this.pickTransports();
    });
    s.on('ping', () => {
      this.lastPingAt = Date.now();
    });
    s.on('reconnecting', (attempt: number) => {
      this.reconnectAttempt = attempt;
      this.setStatus('reconnecting');
      this.dispatch('reconnecting', attempt);
    });
    s.on('connect_error', (err: unknown) => {
      this.connectFailed(new RealtimeError('connect_failed', `connection failed: ${messageOf(err)}`, { cause: err }));
    });
    s.on('connect_timeout', () => {
      this.connectFailed(new RealtimeError('connect_failed', 'connection attempt timed out'));
    });
    s.on('error', (err: unknown) => {
      // socket.io-client reports transport failures here too (Error objects, such as
      // "xhr post error"); a 'disconnect' follows them and reconnection takes over.
      if (err instanceof Error) return;
      // Otherwise it is a Socket.IO error packet: the server refused this socket.
      const e = new RealtimeError('unauthorized', `connection refused: ${messageOf(err)}`, { cause: err });
      this.setStatus('disconnected');
      this.settleConnect(e);
      this.dispatch('connect_error', e);
    });
    s.on('reconnect_failed', () => {
      this.setStatus('disconnected');
      this.settleConnect(new RealtimeError('connect_failed', 'reconnection gave up'));
      this.dispatch('reconnect_failed');
    });
  }

  /**
   * pickTransports alternates, without explicit `transports`, between WebSocket and polling
   * (with an upgrade) from one failed connection attempt to the next.
   */
  private pickTransports(): void {
    const opts = this.socket.io?.opts;
    if (!this.autoTransports || !opts) return;
    opts.transports = this.failedAttempts % 2 === 1 ? [...POLLING_THEN_UPGRADE] : [...WEBSOCKET_FIRST];
  }

  /** connectFailed reports a failed attempt; without reconnection it is the last one. */
  private connectFailed(err: RealtimeError): void {
    this.failedAttempts++;
    if (!this.reconnection) {
      this.setStatus('disconnected');
      this.settleConnect(err);
    }
    this.dispatch('connect_error', err);
  }

  private settleConnect(err?: RealtimeError): void {
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) {
      if (err) w.reject(err);
      else w.resolve();
    }
  }

  /**
   * scheduleKeepalive checks, on a Worker timer, that an Engine.IO ping went out within the
   * server's ping interval, and sends one when the throttled main-thread timer has not.
   * The server drops a socket that stays silent too long, and a hidden tab's timers can be
   * held back for a minute.
   */
  private scheduleKeepalive(): void {
    const scheduler = this.keepaliveScheduler;
    if (!scheduler) return;
    if (this.keepaliveTimer !== undefined) scheduler.clearTimeout(this.keepaliveTimer);
    const engine = this.socket.io?.engine;
    const interval = engine?.pingInterval && engine.pingInterval > 0 ? engine.pingInterval : 25_000;
    this.keepaliveTimer = scheduler.setTimeout(() => {
      this.keepaliveTimer = undefined;
      if (!this.socket.connected) return;
      const current = this.socket.io?.engine;
      if (current?.readyState === 'open' && typeof current.ping === 'function' && Date.now() - this.lastPingAt >= interval) {
        this.lastPingAt = Date.now();
        current.ping();
      }
      this.scheduleKeepalive();
    }, Math.max(250, Math.floor(interval / 4)));
  }

  private currentToken(): string | undefined {
    const t = this.tokenSource;
    return typeof t === 'function' ? t() : t;
  }

  private refreshToken(): void {
    if (typeof this.tokenSource !== 'function') return;
    const opts = this.socket.io?.opts;
    if (!opts) return;
    const query = typeof opts.query === 'object' && opts.query ? opts.query : {};
    const token = this.currentToken();
    if (token) query.token = token;
    else delete query.token;
    opts.query = query;
  }

  private rejectPending(code: 'disconnected', message: string): void {
    const all = [...this.pending];
    this.pending.clear();
    for (const p of all) {
      if (p.timer !== undefined) clearTimeout(p.timer);
      p.reject(new RealtimeError(code, `${p.event}: ${message}`, { event: p.event }));
    }
  }

  private setStatus(status: ConnectionStatus): void {
    if (this.statusValue === status) return;
    this.statusValue = status;
    this.dispatch('status', status);
  }
}

function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'string') return err;
  if (err && typeof err === 'object') {
    const o = err as { message?: unknown; code?: unknown };
    if (typeof o.message === 'string') return o.message;
    if (typeof o.code === 'string') return o.code;
    try {
      return JSON.stringify(err);
    } catch {
      /* fall through */
    }
  }
  return String(err);
}
