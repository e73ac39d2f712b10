import type { RealtimeClient } from './client.js';
import { Emitter } from './emitter.js';
import { isRealtimeError, RealtimeError } from './errors.js';
import type { TopicMessage } from './protocol.js';

/** A handler of {@link Topics.subscribe}: the message's `data`, then the whole message. */
export type TopicHandler<T = unknown> = (data: T, message: TopicMessage<T>) => void;

/** Options of one {@link Topics.subscribe} call. */
export interface TopicSubscribeOptions {
  /** Time allowed for the server's acknowledgement. Default: the client's `ackTimeoutMs`. */
  timeoutMs?: number;
}

/** Events of {@link Topics} (`client.topics`). */
export interface TopicsEvents {
  /**
   * The server confirmed the subscription to `topic`: the first time (`resubscribed`
   * false), or again on a new socket after a reconnect (`resubscribed` true).
   */
  subscribed: (topic: string, resubscribed: boolean) => void;
  /**
   * Subscribing again to `topic` after a reconnect failed. With `forbidden`,
   * `invalid_payload` or `unauthorized` the subscription has ended (its handlers were
   * removed and {@link TopicSubscription.active} is false); otherwise it is retried with
   * a backoff.
   */
  error: (error: RealtimeError, topic: string) => void;
}

/** Failure codes after which subscribing again to the same topic cannot succeed. */
const PERMANENT = new Set<string>(['invalid_payload', 'payload_too_large', 'forbidden', 'unauthorized']);
/** The server's limits of a topic name. */
const MAX_TOPIC_BYTES = 100;
/** Topic operations sent at once at most (the server allows a socket 40 at once, 20 a second). */
const BURST = 20;
/** Topic operations sent per second once the burst is spent. */
const PER_SECOND = 10;
const MAX_RETRY_MS = 30_000;

interface Entry {
  handler: TopicHandler<any>;
  sub: TopicSubscription;
  /** Settles the subscribe() call that made the entry, until the server answered. */
  waiter?: { resolve: (s: TopicSubscription) => void; reject: (err: RealtimeError) => void };
  timeoutMs?: number;
}

interface TopicState {
  name: string;
  entries: Set<Entry>;
  /** What the socket holds: `unknown` after an acknowledgement that did not come in time. */
  server: 'none' | 'subscribed' | 'unknown';
  /** An operation is queued or awaiting its acknowledgement. */
  busy: boolean;
  /** Whether the topic was ever confirmed on some socket (a later confirmation is a resubscribe). */
  everSubscribed: boolean;
  retryTimer?: ReturnType<typeof setTimeout>;
  retryCount: number;
  /** unsubscribe() calls waiting for the server to drop the subscription. */
  unsubWaiters: Array<() => void>;
}

/**
 * TopicSubscription is one handler's subscription to a topic, from
 * {@link Topics.subscribe}.
 */
export class TopicSubscription {
  /** The topic. */
  readonly topic: string;
  private readonly owner: Topics;
  private activeValue = true;

  /** @internal */
  constructor(owner: Topics, topic: string) {
    this.owner = owner;
    this.topic = topic;
  }

  /**
   * Whether the handler is still called: true until {@link unsubscribe}, a refused
   * subscription, or `client.disconnect()`.
   */
  get active(): boolean {
    return this.activeValue;
  }

  /**
   * unsubscribe stops the handler at once. When it was the topic's last handler the
   * socket unsubscribes too, and the promise resolves once the server answered (or at
   * once when the socket is not connected: a new socket is not subscribed anyway). It
   * never rejects; calling it again does nothing.
   */
  unsubscribe(): Promise<void> {
    if (!this.activeValue) return Promise.resolve();
    this.activeValue = false;
    return this.owner.remove(this);
  }

  /** @internal */
  end(): void {
    this.activeValue = false;
  }
}

/**
 * Topics are the subscriptions of one {@link RealtimeClient} to the server's topics
 * module (`client.topics`): `topic:subscribe`, `topic:unsubscribe`, `topic:message`.
 *
 * Several handlers of one topic share one subscription of the socket. Subscriptions live
 * on the socket, so after a reconnect every topic that still has handlers is subscribed
 * again by itself; a failure then is reported with the `error` event, never as an
 * unhandled rejection.
 */
export class Topics extends Emitter<TopicsEvents> {
  private readonly client: RealtimeClient;
  private readonly ackTimeoutMs: number | undefined;
  private readonly retryDelayMs: number;
  private readonly states = new Map<string, TopicState>();
  /** Topics whose next operation waits for a send slot, in order. */
  private readonly queue: TopicState[] = [];
  private tokens = BURST;
  private tokensAt = 0;
  private pumpTimer?: ReturnType<typeof setTimeout>;

  /** @internal Created by {@link RealtimeClient.topics}. */
  constructor(client: RealtimeClient, options: { ackTimeoutMs?: number; retryDelayMs?: number } = {}) {
    super();
    this.client = client;
    this.ackTimeoutMs = options.ackTimeoutMs;
    this.retryDelayMs = options.retryDelayMs ?? 1000;
    client.on('topic:message', (m: TopicMessage) => this.onMessage(m));
    client.on('connect', () => {
      for (const t of [...this.states.values()]) this.reconcile(t);
    });
    client.on('disconnect', () => this.onDisconnect());
    client.on('connect_error', (err) => this.onConnectFailed(err));
    client.on('reconnect_failed', () => this.onConnectFailed(new RealtimeError('connect_failed', 'reconnection gave up')));
  }

  /**
   * subscribe calls `handler(data, message)` for every `topic:message` of `topic` and
   * resolves once the socket is subscribed (at once when another handler already made it
   * so). When the socket is not connected it waits for the connection (and opens it if
   * nobody has). It rejects with a {@link RealtimeError}: `invalid_payload` for a topic
   * that breaks the id rules (1 to 100 bytes of UTF-8, no control characters, no `{` or
   * `}`; checked before anything is sent), the server's code (`forbidden` when the token
   * does not grant the topic or the socket has 64 topics, `rate_limited`), `timeout`,
   * `unauthorized`/`connect_failed` when the client gives up connecting, `closed` on
   * `client.disconnect()`. A rejected call leaves no handler behind.
   */
  subscribe<T = unknown>(
    topic: string,
    handler: TopicHandler<T>,
    options: TopicSubscribeOptions = {},
  ): Promise<TopicSubscription> {
    if (typeof handler !== 'function') {
      return Promise.reject(new TypeError('topics.subscribe: handler must be a function'));
    }
    const problem = topicProblem(topic);
    if (problem) {
      return Promise.reject(new RealtimeError('invalid_payload', problem, { event: 'topic:subscribe' }));
    }
    let t = this.states.get(topic);
    if (!t) {
      t = { name: topic, entries: new Set(), server: 'none', busy: false, everSubscribed: false, retryCount: 0, unsubWaiters: [] };
      this.states.set(topic, t);
    }
    const sub = new TopicSubscription(this, topic);
    const entry: Entry = { handler, sub };
    if (options.timeoutMs !== undefined) entry.timeoutMs = options.timeoutMs;
    t.entries.add(entry);
    if (t.server === 'subscribed' && !t.busy) return Promise.resolve(sub);
    const done = new Promise<TopicSubscription>((resolve, reject) => {
      entry.waiter = { resolve, reject };
    });
    const status = this.client.status;
    if (status === 'idle' || status === 'disconnected') void this.client.connect().catch(() => undefined);
    this.reconcile(t);
    return done;
  }

  /** The topics that have at least one handler. */
  list(): string[] {
    return [...this.states.values()].filter((t) => t.entries.size > 0).map((t) => t.name);
  }

  /** has reports whether the socket is subscribed to `topic` now (confirmed by the server). */
  has(topic: string): boolean {
    const t = this.states.get(topic);
    return !!t && t.entries.size > 0 && t.server === 'subscribed';
  }

  /** @internal Removes a subscription's handler (TopicSubscription.unsubscribe). */
  remove(sub: TopicSubscription): Promise<void> {
    const t = this.states.get(sub.topic);
    if (!t) return Promise.resolve();
    for (const e of t.entries) {
      if (e.sub !== sub) continue;
      t.entries.delete(e);
      e.waiter?.reject(new RealtimeError('closed', `unsubscribed from ${t.name} before the server answered`, { event: 'topic:subscribe' }));
      e.waiter = undefined;
    }
    if (t.entries.size > 0) return Promise.resolve();
    const done = new Promise<void>((resolve) => t.unsubWaiters.push(resolve));
    this.reconcile(t);
    return done;
  }

  /** @internal Called by RealtimeClient.disconnect: every subscription ends with the socket. */
  detach(): void {
    const err = new RealtimeError('closed', 'the client was disconnected', { event: 'topic:subscribe' });
    for (const t of this.states.values()) {
      if (t.retryTimer !== undefined) clearTimeout(t.retryTimer);
      for (const e of t.entries) {
        e.sub.end();
        e.waiter?.reject(err);
      }
      t.entries.clear();
      resolveAll(t);
    }
    this.states.clear();
    this.queue.length = 0;
    if (this.pumpTimer !== undefined) clearTimeout(this.pumpTimer);
    this.pumpTimer = undefined;
  }

  // --- the socket's side ---------------------------------------------------------------

  /**
   * reconcile brings the socket's subscription to `t` in line with its handlers, one
   * operation at a time per topic (the answer of one decides the next).
   */
  private reconcile(t: TopicState): void {
    if (t.busy || t.retryTimer !== undefined) return;
    const wanted = t.entries.size > 0;
    if (!this.client.connected) {
      if (!wanted) this.forget(t);
      return;
    }
    if (wanted && t.server !== 'subscribed') this.enqueue(t);
    else if (!wanted && t.server !== 'none') this.enqueue(t);
    else if (!wanted) this.forget(t);
    else this.settleWaiters(t);
  }

  private forget(t: TopicState): void {
    resolveAll(t);
    if (t.entries.size === 0 && !t.busy && this.states.get(t.name) === t) {
      if (t.retryTimer !== undefined) clearTimeout(t.retryTimer);
      this.states.delete(t.name);
    }
  }

  private enqueue(t: TopicState): void {
    t.busy = true;
    this.queue.push(t);
    this.pump();
  }

  /** pump sends queued operations while the pace allows, and comes back for the rest. */
  private pump(): void {
    if (this.pumpTimer !== undefined) return;
    const now = Date.now();
    this.tokens = Math.min(BURST, this.tokens + ((now - this.tokensAt) * PER_SECOND) / 1000);
    this.tokensAt = now;
    while (this.queue.length > 0 && this.tokens >= 1) {
      const t = this.queue.shift()!;
      if (!this.client.connected) {
        t.busy = false;
        continue;
      }
      this.tokens -= 1;
      this.send(t);
    }
    if (this.queue.length > 0) {
      const wait = Math.ceil(((1 - this.tokens) * 1000) / PER_SECOND);
      this.pumpTimer = setTimeout(() => {
        this.pumpTimer = undefined;
        this.pump();
      }, Math.max(wait, 1));
    }
  }

  private send(t: TopicState): void {
    const wanted = t.entries.size > 0;
    if (wanted) void this.sendSubscribe(t);
    else void this.sendUnsubscribe(t);
  }

  private async sendSubscribe(t: TopicState): Promise<void> {
    let timeoutMs = this.ackTimeoutMs;
    for (const e of t.entries) if (e.waiter && e.timeoutMs !== undefined) timeoutMs = e.timeoutMs;
    try {
      await this.client.emit('topic:subscribe', { topic: t.name }, timeoutMs === undefined ? {} : { timeoutMs });
      t.busy = false;
      t.server = 'subscribed';
      t.retryCount = 0;
      const resubscribed = t.everSubscribed;
      t.everSubscribed = true;
      if (t.entries.size > 0) {
        this.settleWaiters(t);
        this.dispatch('subscribed', t.name, resubscribed);
      }
      this.reconcile(t);
    } catch (err) {
      t.busy = false;
      const e = asRealtimeError(err);
      if (e.code === 'disconnected') {
        // The socket is gone and its subscriptions with it; the next connect subscribes again.
        t.server = 'none';
        this.reconcile(t);
        return;
      }
      if (e.code === 'timeout') t.server = 'unknown';
      // The calls waiting for this answer fail; handlers already confirmed on an earlier
      // socket are retried, or dropped for good when retrying cannot help.
      let established = 0;
      for (const entry of [...t.entries]) {
        if (entry.waiter) {
          t.entries.delete(entry);
          entry.sub.end();
          entry.waiter.reject(e);
          entry.waiter = undefined;
        } else {
          established++;
        }
      }
      if (established > 0) {
        const permanent = PERMANENT.has(e.code);
        if (permanent) {
          for (const entry of t.entries) entry.sub.end();
          t.entries.clear();
        }
        this.dispatch('error', e, t.name);
        if (!permanent) {
          this.retry(t);
          return;
        }
      }
      this.reconcile(t);
    }
  }

  private async sendUnsubscribe(t: TopicState): Promise<void> {
    try {
      await this.client.emit('topic:unsubscribe', { topic: t.name }, this.ackTimeoutMs === undefined ? {} : { timeoutMs: this.ackTimeoutMs });
      t.busy = false;
      t.server = 'none';
      t.retryCount = 0;
    } catch (err) {
      t.busy = false;
      const e = asRealtimeError(err);
      if (e.code === 'disconnected' || PERMANENT.has(e.code)) {
        // Gone with the socket, or the server will never hold it (a refused name).
        t.server = 'none';
      } else {
        t.server = 'unknown';
        resolveAll(t); // the handler is gone; nobody waits for the retry
        this.retry(t);
        return;
      }
    }
    resolveAll(t);
    this.reconcile(t);
  }

  private retry(t: TopicState): void {
    const delay = Math.min(this.retryDelayMs * 2 ** t.retryCount, MAX_RETRY_MS);
    t.retryCount++;
    t.retryTimer = setTimeout(() => {
      t.retryTimer = undefined;
      this.reconcile(t);
    }, delay);
  }

  private settleWaiters(t: TopicState): void {
    for (const e of t.entries) {
      const w = e.waiter;
      if (!w) continue;
      e.waiter = undefined;
      w.resolve(e.sub);
    }
  }

  private onDisconnect(): void {
    // Operations not sent yet are dropped; those awaiting an answer fail with
    // `disconnected` and settle themselves.
    const queued = new Set(this.queue);
    this.queue.length = 0;
    if (this.pumpTimer !== undefined) clearTimeout(this.pumpTimer);
    this.pumpTimer = undefined;
    for (const t of [...this.states.values()]) {
      if (queued.has(t)) t.busy = false;
      if (!t.busy) t.server = 'none';
      // A retry waits for the next connect instead.
      if (t.retryTimer !== undefined) {
        clearTimeout(t.retryTimer);
        t.retryTimer = undefined;
      }
      if (t.entries.size === 0 && !t.busy) this.forget(t);
    }
  }

  /** onConnectFailed fails the subscribe() calls still waiting once the client gave up connecting. */
  private onConnectFailed(err: RealtimeError): void {
    if (this.client.connected || this.client.status !== 'disconnected') return;
    for (const t of [...this.states.values()]) {
      for (const e of [...t.entries]) {
        if (!e.waiter) continue;
        t.entries.delete(e);
        e.sub.end();
        e.waiter.reject(err);
        e.waiter = undefined;
      }
      if (t.entries.size === 0) this.forget(t);
    }
  }

  private onMessage(m: TopicMessage): void {
    if (!m || typeof m !== 'object' || typeof m.topic !== 'string') return;
    const t = this.states.get(m.topic);
    if (!t) return;
    for (const e of [...t.entries]) {
      if (!e.sub.active) continue;
      try {
        e.handler(m.data, m);
      } catch (err) {
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
  }
}

function resolveAll(t: TopicState): void {
  const waiters = t.unsubWaiters;
  t.unsubWaiters = [];
  for (const w of waiters) w();
}

function asRealtimeError(err: unknown): RealtimeError {
  if (isRealtimeError(err)) return err;
  return new RealtimeError('internal', err instanceof Error ? err.message : String(err), { cause: err });
}

/**
 * topicProblem checks a topic against the protocol's id rules (what the server checks):
 * a string of 1 to 100 bytes of UTF-8, valid Unicode (no lone surrogate), no control
 * character (C0, DEL, C1), no `{` or `}`. It returns what is wrong, or null.
 */
export function topicProblem(topic: unknown): string | null {
  if (typeof topic !== 'string' || topic.length === 0) return 'topic must be a non-empty string';
  if (utf8Length(topic) > MAX_TOPIC_BYTES) return `topic must be at most ${MAX_TOPIC_BYTES} bytes of UTF-8`;
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = topic.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
      return 'topic must be valid Unicode (a lone surrogate)';
    }
    if (c >= 0xdc00 && c <= 0xdfff) return 'topic must be valid Unicode (a lone surrogate)';
    if (c <= 0x1f || (c >= 0x7f && c <= 0x9f)) return 'topic must not contain control characters';
    if (c === 0x7b || c === 0x7d) return 'topic must not contain { or }';
  }
  return null;
}

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
