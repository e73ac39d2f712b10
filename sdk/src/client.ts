import { io } from 'socket.io-client';
import { Emitter } from './emitter.js';
import { AckTimeoutError, RealtimeError } from './errors.js';
import { PresenceChannel, type PresenceChannelOptions } from './presence.js';
import type {
  ChatMessage,
  ClientToServerEvents,
  PresenceBatch,
  PresenceCountEvent,
  PresenceEvent,
  PresenceResync,
  TopicMessage,
} from './protocol.js';
import { Topics } from './topics.js';

/**
 * SocketLike is the part of a socket.io-client 4.x `Socket` the SDK uses. Tests pass a
 * fake through {@link RealtimeClientOptions.socketFactory}.
 */
export interface SocketLike {
  readonly connected: boolean;
  /** The socket's id on the server (Socket.IO's `socket.id`): set while connected, new for every connection. */
  readonly id?: string | undefined;
  /**
   * Whether the socket will connect again by itself (socket.io-client's `socket.active`):
   * false after the server refused the CONNECT or disconnected the socket.
   */
  readonly active?: boolean;
  on(event: string, listener: (...args: any[]) => void): unknown;
  off(event: string, listener?: (...args: any[]) => void): unknown;
  emit(event: string, ...args: any[]): unknown;
  open(): unknown;
  close(): unknown;
  /** The socket.io Manager: reconnection events, options of the next attempt, the engine. */
  io?: ManagerLike;
}

/** The part of a socket.io-client 4.x Manager the SDK uses. */
export interface ManagerLike {
  on(event: string, listener: (...args: any[]) => void): unknown;
  opts?: { transports?: Array<'websocket' | 'polling'> };
  engine?: EngineLike | null;
}

/** The part of an engine.io-client 6.x Socket the SDK uses. */
export interface EngineLike {
  readyState?: string;
  transport?: { name?: string };
  close(): void;
}

/** Auth callback of the Socket.IO CONNECT packet (socket.io-client 4.x's `auth` option). */
export type AuthCallback = (cb: (data: Record<string, unknown>) => void) => void;

/** Options passed to the socket factory: those of socket.io-client 4.x's `io()`. */
export interface SocketFactoryOptions {
  path: string;
  transports?: Array<'websocket' | 'polling'>;
  query: Record<string, string>;
  /** Present when a token is configured: called before every CONNECT packet. */
  auth?: AuthCallback;
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
   * JWT sent in the Socket.IO CONNECT packet's auth object (`{ token }`). A function is
   * called again before every connection attempt, so it can return a fresh token.
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
  /** Send cookies with cross-origin polling requests (socket.io's default: false). */
  withCredentials?: boolean;
  /** Creates the socket. Default: socket.io-client 4.8's `io()`. */
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
  /** The socket is gone; `reason` is socket.io's ("transport close", "ping timeout", "io client disconnect", "io server disconnect", ...). */
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
  /** Revision 3: the presence events of one server tick (channels in `batched` mode apply them). */
  'presence:batch': (batch: PresenceBatch) => void;
  /** Revision 3: a room's size (channels in `count` mode apply it). */
  'presence:count': (count: PresenceCountEvent) => void;
  /** The server asks the room's sockets to sync (channels answer with `presence:sync`). */
  'presence:resync': (resync: PresenceResync) => void;
  /** A chat message of the room this client joined. */
  'chat:message': (message: ChatMessage) => void;
  /** A message of a topic this socket is subscribed to (`client.topics` routes them to their handlers). */
  'topic:message': (message: TopicMessage) => void;
}

/**
 * A listener of a server event: the event's arguments (a backend's emit through the HTTP
 * API sends exactly one, its `data`).
 */
export type ServerEventListener<T = any> = (data: T, ...rest: any[]) => void;

type AnyListener = (...args: any[]) => void;

/** Names socket.io-client keeps for itself: the server cannot send them. */
const SOCKET_IO_RESERVED = new Set<string>([
  'connect',
  'connect_error',
  'disconnect',
  'disconnecting',
  'newListener',
  'removeListener',
]);

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

/** ServerEvents holds the listeners of {@link RealtimeClient.onServer}. */
class ServerEvents extends Emitter<{ [event: string]: AnyListener }> {
  deliver(event: string, args: any[]): void {
    this.dispatch(event, ...args);
  }
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
  private readonly serverEvents = new ServerEvents();
  private topicsValue: Topics | null = null;
  private readonly pending = new Set<Pending>();
  private readonly channels = new Map<string, PresenceChannel>();
  private statusValue: ConnectionStatus = 'idle';
  private everConnected = false;
  private dropped = false;
  private reconnectAttempt = 0;
  private readonly reconnection: boolean;
  private connectWaiters: Array<{ resolve: () => void; reject: (err: RealtimeError) => void }> = [];
  private readonly autoTransports: boolean;
  private failedAttempts = 0;

  constructor(url: string, options: RealtimeClientOptions = {}) {
    super();
    this.url = url;
    this.ackTimeoutMs = options.ackTimeoutMs ?? 10_000;
    this.tokenSource = options.token;
    this.reconnection = options.reconnection ?? true;
    const factoryOptions: SocketFactoryOptions = {
      path: options.path ?? '/socket.io',
      query: { ...(options.query ?? {}) },
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
    if (this.tokenSource !== undefined) {
      // socket.io-client calls it before every CONNECT packet, so a function token is
      // asked again for each attempt.
      factoryOptions.auth = (cb) => {
        const token = this.currentToken();
        cb(token ? { token } : {});
      };
    }
    this.socket = (options.socketFactory ?? defaultFactory)(url, factoryOptions);
    this.wireSocket();
    if (options.autoConnect ?? true) void this.connect().catch(() => undefined);
  }

  /** The connection status. */
  get status(): ConnectionStatus {
    return this.statusValue;
  }

  /**
   * The socket's id on the server while connected (undefined otherwise): the id a backend
   * passes to `POST /v1/sockets/{socketId}/emit`. Each connection gets a new one, so read
   * it again after a `connect` event. Whoever knows it can have events sent to this
   * socket: give it only to your own backend.
   */
  get id(): string | undefined {
    return this.socket.connected ? this.socket.id : undefined;
  }

  /**
   * The topic subscriptions of this connection (the server's topics module), created on
   * first use: `client.topics.subscribe(topic, handler)`.
   */
  get topics(): Topics {
    if (!this.topicsValue) this.topicsValue = new Topics(this, { ackTimeoutMs: this.ackTimeoutMs });
    return this.topicsValue;
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
    this.topicsValue?.detach();
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
   * server sends (`presence:event`, `chat:message`, events a backend emits to a room, a
   * user or this socket, your own modules' events), typed with `T`:
   * `client.on<Order>('order:shipped', (order) => ...)`. It returns a function that removes
   * the listener. The names of the connection events (`connect`, `disconnect`, `status`,
   * ...) are the client's own: listen to a server event of such a name with
   * {@link onServer}.
   */
  override on<K extends keyof RealtimeClientEvents>(event: K, listener: RealtimeClientEvents[K]): () => void;
  override on<T = any>(event: string, listener: ServerEventListener<T>): () => void;
  override on(event: string, listener: AnyListener): () => void {
    this.forward(event);
    return super.on(event, listener);
  }

  override once<K extends keyof RealtimeClientEvents>(event: K, listener: RealtimeClientEvents[K]): () => void;
  override once<T = any>(event: string, listener: ServerEventListener<T>): () => void;
  override once(event: string, listener: AnyListener): () => void {
    this.forward(event);
    return super.once(event, listener);
  }

  /**
   * onServer listens to the server event `event` whatever its name, including the names of
   * the client's own connection events (a backend may emit `status`). It throws a
   * TypeError for Socket.IO's reserved names (`connect`, `connect_error`, `disconnect`,
   * `disconnecting`, `newListener`, `removeListener`), which no server can send. It
   * returns a function that removes the listener.
   */
  onServer<T = any>(event: string, listener: ServerEventListener<T>): () => void {
    if (SOCKET_IO_RESERVED.has(event)) throw new TypeError(`onServer: ${event} is reserved by Socket.IO`);
    this.forward(event, true);
    return this.serverEvents.on(event, listener);
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

  /** forward makes the socket's events of that name reach this client's listeners. */
  private forward(event: string, forServer = false): void {
    if (SOCKET_IO_RESERVED.has(event) || this.forwarded.has(event)) return;
    if (LOCAL_EVENTS.has(event) && !forServer) return;
    this.forwarded.add(event);
    this.socket.on(event, (...args: any[]) => {
      if (!LOCAL_EVENTS.has(event)) this.dispatch(event, ...(args as any));
      this.serverEvents.deliver(event, args);
    });
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
      this.settleConnect();
      this.dispatch('connect');
      if (reconnected) this.dispatch('reconnect', attempt);
    });
    s.on('disconnect', (reason: string) => {
      this.rejectPending('disconnected', `disconnected (${reason})`);
      // socket.io-client 4 reconnects unless the socket was closed on purpose, by this
      // client or by the server ("io server disconnect").
      const willReconnect =
        reason !== 'io client disconnect' && reason !== 'io server disconnect' && this.statusValue !== 'disconnected';
      this.dropped = willReconnect && this.everConnected;
      this.setStatus(willReconnect ? 'reconnecting' : 'disconnected');
      this.dispatch('disconnect', reason);
    });
    s.on('connect_error', (err: unknown) => {
      if (s.active === false) {
        // The server answered the CONNECT with CONNECT_ERROR (a bad or missing token):
        // socket.io-client does not try again.
        const e = new RealtimeError('unauthorized', `connection refused: ${messageOf(err)}`, { cause: err });
        this.setStatus('disconnected');
        this.settleConnect(e);
        this.dispatch('connect_error', e);
        return;
      }
      this.connectFailed(new RealtimeError('connect_failed', `connection failed: ${messageOf(err)}`, { cause: err }));
    });
    const m = s.io;
    if (!m) return;
    m.on('reconnect_attempt', (attempt: number) => {
      this.pickTransports();
      this.reconnectAttempt = attempt;
      this.setStatus('reconnecting');
      this.dispatch('reconnecting', attempt);
    });
    m.on('reconnect_failed', () => {
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

  private currentToken(): string | undefined {
    const t = this.tokenSource;
    return typeof t === 'function' ? t() : t;
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
