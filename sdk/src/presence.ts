import type { RealtimeClient } from './client.js';
import { Emitter } from './emitter.js';
import { isRealtimeError, RealtimeError } from './errors.js';
import { PresenceMembers } from './members.js';
import type {
  ChatMessage,
  PresenceBatch,
  PresenceCount,
  PresenceCountEvent,
  PresenceCountSnapshot,
  PresenceEvent,
  PresenceEventMode,
  PresenceHeartbeatAck,
  PresenceJoinAck,
  PresenceJoinPayload,
  PresenceMembersPage,
  PresenceMembersPayload,
  PresenceResync,
  PresenceSelf,
  PresenceSnapshot,
  PresenceSnapshotMode,
  PresenceState,
  PresenceStatePatch,
  PresenceSyncAck,
  PresenceSyncPayload,
} from './protocol.js';
import { RecoveryPosition, type PresenceRecovery } from './recovery.js';
import {
  heldElsewhere,
  holdConnection,
  readRecord,
  recordKey,
  removeRecord,
  sessionStore,
  writeRecord,
  type ReloadRecord,
  type StorageLike,
} from './reload.js';
import { mainThreadScheduler, workerScheduler, type Scheduler } from './timers.js';

/** Options of {@link RealtimeClient.presence}. */
export interface PresenceChannelOptions {
  /** The user this connection belongs to (with a JWT, the token's `sub`). */
  userId: string;
  /** Initial state of the connection: a JSON object. */
  state?: PresenceState;
  /** Time between heartbeats. Keep it well inside the server's PRESENCE_TTL_MS. Default 10000 ms. */
  heartbeatIntervalMs?: number;
  /** Consecutive missed heartbeats after which the channel emits `error` (`heartbeat_timeout`). Default 3. */
  maxMissedHeartbeats?: number;
  /** Time allowed for a heartbeat's acknowledgement. Default: the interval, at most 10000 ms. */
  heartbeatTimeoutMs?: number;
  /** Time allowed for join, sync and leave acknowledgements. Default: the client's `ackTimeoutMs`. */
  ackTimeoutMs?: number;
  /** First delay before retrying an automatic re-join or sync that failed; doubles up to 30 s. Default 1000 ms. */
  retryDelayMs?: number;
  /**
   * Run the heartbeat timer in a Worker where one can be started, so that a background tab
   * keeps its heartbeat rate (see the README). Default true.
   */
  workerTimers?: boolean;
  /** Send a heartbeat as soon as a hidden tab is shown again. Default true. */
  heartbeatOnVisible?: boolean;
  /**
   * Keep the connection in sessionStorage so that the page loaded by a reload resumes it
   * (within the server's disconnect grace the others see nothing, and the state is kept).
   * A duplicated tab, which gets a copy of sessionStorage, detects that its original still
   * holds the connection and joins fresh. Default true; it only works where sessionStorage
   * exists.
   */
  resumeOnReload?: boolean;
  /**
   * How long a loading page waits for another page of the origin to say it holds the
   * stored connection before it resumes it. Default 250 ms (spent while the socket
   * connects).
   */
  reloadProbeMs?: number;
  /**
   * How the channel receives the room's events (protocol revision 3, for large rooms):
   * - `each` (the default): one `presence:event` per event;
   * - `batched`: the server's `presence:batch` once per tick, applied event by event exactly
   *   like `each` (same `join`/`update`/`leave` events, same seq-gap recovery);
   * - `count`: only the room's size, at most once per tick: {@link PresenceChannel.count}
   *   and the `count` event, no member list kept live;
   * - `none`: present and seen by everyone, but no events at all.
   */
  events?: PresenceEventMode;
  /**
   * What the snapshot of the join (and of every sync) holds (protocol revision 3):
   * `full` every connection, `count` only the room's size (no member list), `page` the
   * first page of {@link pageSize} connections (load more with
   * {@link PresenceChannel.loadMore} or {@link PresenceChannel.loadAll}). Default `count`
   * when `events` is `count` or `none`, else `full`.
   */
  snapshot?: PresenceSnapshotMode;
  /** Connections per page: of a `page` snapshot and of each `loadMore`, 1 to 1000. Default 100. */
  pageSize?: number;
}

/**
 * Status of a {@link PresenceChannel}:
 * - `idle`: not joined and not trying to;
 * - `joining`: a join is in flight, or waits for the socket to connect;
 * - `joined`: in the room, heartbeating;
 * - `reconnecting`: the socket dropped; the channel resumes its connection once it is back;
 * - `left`: {@link PresenceChannel.leave} was called (join again at will).
 */
export type PresenceChannelStatus = 'idle' | 'joining' | 'joined' | 'reconnecting' | 'left';

/**
 * Why the channel replaced its view with a snapshot:
 * - `join`: a fresh join (first join, or a resume the server could not honour);
 * - `resume`: a resume after a reconnect or a page reload kept the same connection, nobody
 *   saw a leave/join;
 * - `rejoin`: the server answered `not_joined` (or announced this connection's `leave`), so
 *   the channel joined again with a new connection;
 * - `gap`: an event was missed (`seq` jumped) and `presence:sync` recovered;
 * - `stale_epoch`: a heartbeat was refused as stale and `presence:sync` refreshed the epoch;
 * - `resync`: the server sent `presence:resync` (it may have dropped events of the room).
 */
export type PresenceSyncReason = 'join' | 'resume' | 'rejoin' | 'gap' | 'stale_epoch' | 'resync';

/** Argument of the `sync` event. */
export interface PresenceSyncInfo {
  reason: PresenceSyncReason;
  /**
   * The snapshot that replaced the view. A count snapshot comes with empty `members` and
   * `connections` and its `count`; a page with `count` and `next`.
   */
  snapshot: PresenceSnapshot;
  self: PresenceSelf;
}

/** Result of {@link PresenceChannel.join}. */
export interface PresenceJoinResult {
  self: PresenceSelf;
  /** The join's snapshot (in count mode: empty lists and `count`; a page: `count` and `next`). */
  snapshot: PresenceSnapshot;
  /** True when the join resumed the connection held before a reconnect or a page reload. */
  resumed: boolean;
  /**
   * Revision 3: when the join asked to recover what was missed (a reconnect or a reload with
   * a history on the server), how that went; else null.
   */
  recovery: PresenceRecovery | null;
}

/** Result of {@link PresenceChannel.setState}. */
export interface SetStateResult {
  /** The connection's epoch after the change (0 before the first join). */
  epoch: number;
  /** Whether the server's state changed. */
  changed: boolean;
  /**
   * True when the channel was not joined (not yet, or reconnecting): the patch is kept and
   * sent with the next join or resume.
   */
  queued: boolean;
}

/** Events of a {@link PresenceChannel}. */
export interface PresenceChannelEvents {
  /** A connection joined (the channel's own join is part of the first `sync` instead). */
  join: (event: PresenceEvent) => void;
  /** A connection's state changed (this channel's own included). */
  update: (event: PresenceEvent) => void;
  /** A connection left, with `reason` `leave`, `disconnect` or `expired`. */
  leave: (event: PresenceEvent) => void;
  /**
   * The view was replaced with a snapshot, or (revision 3) brought up to date by the events
   * the server replayed (then `snapshot` is the view as it is after them; see `recover`).
   */
  sync: (info: PresenceSyncInfo) => void;
  /** Something went wrong that the channel could not fix by itself at once. */
  error: (error: RealtimeError) => void;
  /** The channel's status changed. */
  status: (status: PresenceChannelStatus) => void;
  /**
   * A join or sync asked the server for what the channel missed (revision 3): `recovered`
   * true when it was replayed (the events came as `join`/`update`/`leave`, and the chat
   * messages to the client's `chat:message` listeners), false when a fresh snapshot (`sync`)
   * replaced the view instead.
   */
  recover: (recovery: PresenceRecovery) => void;
  /** The room's size changed ({@link PresenceChannel.count}), in every events mode that reports it. */
  count: (count: PresenceCount) => void;
  /**
   * The member view changed (after `sync`, `join`, `update`, `leave`, a page merged, and
   * a `count` change): re-render here.
   */
  change: () => void;
}

/** Most events kept while a join or sync is in flight. */
const MAX_BUFFERED = 10_000;
/** Syncs in a row that may find `seq` still jumping before the channel accepts the gap. */
const MAX_GAP_SYNCS = 3;
/** Failure codes that retrying the same join cannot fix. */
const PERMANENT_JOIN_ERRORS = new Set<string>([
  'invalid_payload',
  'payload_too_large',
  'forbidden',
  'unauthorized',
  'already_joined',
]);
/** Delay before a page load that failed is tried again (background paging). */
const PAGE_RETRY_MS = 2000;
/** Heartbeat failures counted as missed heartbeats. */
const MISSED_HEARTBEAT_ERRORS = new Set<string>(['timeout', 'unavailable', 'internal', 'rate_limited']);

/**
 * How a join is sent: `join` fresh; `resume` after a reconnect (carrying only the queued
 * patch); `reload` resuming the connection stored by the page before a reload (carrying
 * the whole state, which changes nothing when the connection is still there and is the
 * state of the fresh connection otherwise); `rejoin` after the server dropped the
 * connection.
 */
type JoinKind = 'join' | 'resume' | 'reload' | 'rejoin';

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (err: unknown) => void;
}

/**
 * PresenceChannel is this client's presence in one room: it joins, keeps a live
 * {@link PresenceMembers} view, heartbeats with the latest epoch, and heals itself after
 * reconnects (resume), `not_joined` (re-join) and missed events (sync). Get one from
 * {@link RealtimeClient.presence}.
 *
 * All its work runs on the client's socket and the channel's single timer; nothing is
 * shared between channels.
 */
export class PresenceChannel extends Emitter<PresenceChannelEvents> {
  /** The room. */
  readonly roomId: string;
  /** The user this channel joins as. */
  readonly userId: string;
  /** The live view of the room. */
  readonly members = new PresenceMembers();

  private readonly client: RealtimeClient;
  private readonly intervalMs: number;
  private readonly maxMissed: number;
  private readonly heartbeatTimeoutMs: number;
  private readonly ackTimeoutMs: number | undefined;
  private readonly retryDelayMs: number;
  private readonly scheduler: Scheduler;
  private readonly heartbeatOnVisible: boolean;

  private statusValue: PresenceChannelStatus = 'idle';
  /** Whether the application wants this channel in the room (between join() and leave()). */
  private wanted = false;
  /** Bumped whenever the connection's session changes; stale async results compare it. */
  private gen = 0;
  private selfValue: PresenceSelf | null = null;
  private seqValue = 0;
  private countValue: PresenceCount = { connections: 0, members: 0 };
  /** The connection's state as last known to be on the server. */
  private baseState: PresenceState;
  /** Patches not yet on the server, sent with the next join or resume (null keys delete). */
  private pendingPatch: PresenceStatePatch | null = null;
  /** Events held while a join or sync is in flight. */
  private buffer: PresenceEvent[] = [];
  private buffering = false;
  private gapSyncs = 0;
  private joinInFlight = false;
  private joinWaiter: Deferred<PresenceJoinResult> | null = null;
  private retryTimer: number | undefined;
  private retryCount = 0;
  private heartbeatTimer: number | undefined;
  private heartbeatChain: Promise<unknown> = Promise.resolve();
  private lastHeartbeatAt = 0;
  private beatId = 0;
  private missed = 0;
  private missedReported = false;
  private detachVisibility: (() => void) | null = null;
  /** A `presence:resync` came while a join or sync was in flight: sync once it is done. */
  private resyncPending = false;
  /** Where the channel is in the room's sequence beyond seqValue (see recovery.ts). */
  private readonly position = new RecoveryPosition();
  private recoveryValue: PresenceRecovery | null = null;

  // Large rooms (protocol revision 3).
  private readonly eventMode: PresenceEventMode;
  private readonly snapshotMode: PresenceSnapshotMode;
  private readonly pageSize: number | undefined;
  /** Whether the members view lists the whole room. */
  private completeValue = false;
  /** Whether the view came from a snapshot with lists (not a count snapshot). */
  private listed = false;
  /** The `after` of the next page, once a page was loaded (null: the last was). */
  private nextAfter: string | null = null;
  private pagesLoaded = 0;
  /** Pages the application asked for (restored after a sync); Infinity: all of them. */
  private pagesWanted = 0;
  /** Bumped whenever a snapshot replaces the view: a page read for an older view is dropped. */
  private viewGen = 0;
  /** The seq of the last event applied per connId while the view is incomplete. */
  private readonly touched = new Map<string, number>();
  /** Page loads run one at a time. */
  private pageChain: Promise<unknown> = Promise.resolve();
  private pageRetryTimer: number | undefined;
  /** A `presence:count` that came while a join or sync was in flight. */
  private heldCount: PresenceCountEvent | null = null;

  // Page reloads (see reload.ts).
  private readonly store: StorageLike | null;
  private readonly storeKey: string;
  private readonly reloadProbeMs: number;
  /** Whether join() already looked for a record left by the page before a reload. */
  private reloadChecked = false;
  /** The probe of a stored connection in flight, or null. */
  private probe: object | null = null;
  /** The stored connection is to be resumed with a `reload` join. */
  private reloading = false;
  /** Stops holding the connection (so that this page no longer answers probes for it). */
  private release: (() => void) | null = null;
  private heldConnId: string | null = null;
  private detachPagehide: (() => void) | null = null;

  /** @internal Use {@link RealtimeClient.presence}. */
  constructor(client: RealtimeClient, roomId: string, options: PresenceChannelOptions) {
    super();
    if (!options || typeof options.userId !== 'string') {
      throw new TypeError('presence: options.userId is required');
    }
    this.client = client;
    this.roomId = roomId;
    this.userId = options.userId;
    this.baseState = { ...(options.state ?? {}) };
    this.intervalMs = positive(options.heartbeatIntervalMs, 10_000);
    this.maxMissed = positive(options.maxMissedHeartbeats, 3);
    this.heartbeatTimeoutMs = positive(options.heartbeatTimeoutMs, Math.min(this.intervalMs, 10_000));
    this.ackTimeoutMs = options.ackTimeoutMs;
    this.retryDelayMs = positive(options.retryDelayMs, 1000);
    this.heartbeatOnVisible = options.heartbeatOnVisible ?? true;
    this.scheduler = (options.workerTimers ?? true) ? (workerScheduler() ?? mainThreadScheduler) : mainThreadScheduler;
    this.store = (options.resumeOnReload ?? true) ? sessionStore() : null;
    this.storeKey = recordKey(client.url, roomId);
    this.reloadProbeMs = positive(options.reloadProbeMs, 250);
    this.eventMode = options.events ?? 'each';
    this.snapshotMode = options.snapshot ?? (this.eventMode === 'count' || this.eventMode === 'none' ? 'count' : 'full');
    this.pageSize = options.pageSize;

    client.on('connect', () => this.onConnect());
    client.on('disconnect', () => this.onDisconnect());
    client.on('presence:event', (e: PresenceEvent) => this.onEvent(e));
    client.on('presence:resync', (r: PresenceResync) => this.onResync(r));
    client.on('chat:message', (m: ChatMessage) => {
      if (m && m.roomId === this.roomId && this.wanted && this.position.noteChat(m)) this.persist();
    });
    if (this.eventMode === 'batched') client.on('presence:batch', (b: PresenceBatch) => this.onBatch(b));
    if (this.eventMode === 'count') client.on('presence:count', (c: PresenceCountEvent) => this.onCount(c));
    client.on('connect_error', (err) => this.onConnectFailed(err));
    client.on('reconnect_failed', () =>
      this.onConnectFailed(new RealtimeError('connect_failed', 'reconnection gave up')),
    );
  }

  /** The channel's status. */
  get status(): PresenceChannelStatus {
    return this.statusValue;
  }

  /** This channel's connection (`connId`, `epoch`), or null before the first join. */
  get self(): PresenceSelf | null {
    return this.selfValue ? { ...this.selfValue } : null;
  }

  /** This channel's connection id, or null before the first join. */
  get connId(): string | null {
    return this.selfValue?.connId ?? null;
  }

  /** The latest epoch of this channel's connection (0 before the first join). */
  get epoch(): number {
    return this.selfValue?.epoch ?? 0;
  }

  /** The seq of the last event applied to the view. */
  get seq(): number {
    return this.seqValue;
  }

  /**
   * How the last join or sync that asked to recover what the channel missed went: how many
   * events the server replayed, or `recovered: false` when it sent a fresh snapshot instead
   * (revision 3; null before any).
   */
  get recovery(): PresenceRecovery | null {
    return this.recoveryValue ? { ...this.recoveryValue } : null;
  }

  /** The room's size, as of the last snapshot or event. */
  get count(): PresenceCount {
    return { ...this.countValue };
  }

  /** The events mode this channel joins with (see {@link PresenceChannelOptions.events}). */
  get eventsMode(): PresenceEventMode {
    return this.eventMode;
  }

  /**
   * Whether {@link members} lists the whole room: true after a full snapshot, false after
   * a count snapshot, a page snapshot or a truncated full snapshot until the last page is
   * loaded ({@link loadMore}, {@link loadAll}).
   */
  get complete(): boolean {
    return this.completeValue;
  }

  /** This connection's own state, with the patches not yet acknowledged applied. */
  get state(): PresenceState {
    return this.pendingPatch ? mergeState(this.baseState, this.pendingPatch) : { ...this.baseState };
  }

  /** Consecutive heartbeats that got no acknowledgement in time. */
  get missedHeartbeats(): number {
    return this.missed;
  }

  /** Whether the channel is in the room or trying to be (between join() and leave()). */
  get active(): boolean {
    return this.wanted;
  }

  /** snapshot returns the current view in the shape of a protocol snapshot. */
  snapshot(): PresenceSnapshot {
    return {
      roomId: this.roomId,
      seq: this.seqValue,
      members: this.members.userIds(),
      connections: this.members.connections(),
    };
  }

  /**
   * join enters the room and resolves once joined, with the snapshot. When the socket is
   * not connected yet it waits for the connection (and opens it if nobody has). It rejects with a {@link RealtimeError}
   * when the server refuses the join (`forbidden`, `invalid_payload`, ...) or does not answer
   * in time, and with `closed` when {@link leave} is called first. Calling it while joined
   * resolves with the current view.
   */
  join(): Promise<PresenceJoinResult> {
    if (this.statusValue === 'joined' && this.selfValue) {
      return Promise.resolve({ self: { ...this.selfValue }, snapshot: this.snapshot(), resumed: false, recovery: null });
    }
    if (!this.joinWaiter) this.joinWaiter = deferred();
    const waiter = this.joinWaiter;
    if (!this.wanted) {
      this.wanted = true;
      this.attachVisibility();
      this.attachPagehide();
      const record = this.storedRecord();
      if (record) {
        this.setStatus('joining');
        this.probeRecord(record);
        const status = this.client.status;
        if (status === 'idle' || status === 'disconnected') void this.client.connect().catch(() => undefined);
      } else if (this.client.connected) {
        this.startJoin('join');
      } else {
        this.setStatus('joining');
        const status = this.client.status;
        if (status === 'idle' || status === 'disconnected') void this.client.connect().catch(() => undefined);
      }
    }
    return waiter.promise;
  }

  /**
   * leave removes this connection from the room and stops heartbeats. It resolves with
   * `removed` (false when the server had nothing to remove, or the socket was not
   * connected: the server then removes the connection once its disconnect grace ends).
   */
  async leave(): Promise<{ removed: boolean }> {
    const inRoom = this.selfValue !== null || this.joinInFlight;
    this.stop('left');
    if (!inRoom || !this.client.connected) return { removed: false };
    try {
      const ack = await this.client.emit('presence:leave', {}, { timeoutMs: this.ackTimeoutMs });
      return { removed: ack.removed === true };
    } catch (err) {
      if (isRealtimeError(err, 'disconnected')) return { removed: false };
      throw err;
    }
  }

  /**
   * setState shallow-merges `patch` into this connection's state (a key set to null is
   * deleted) with a `presence:heartbeat` carrying `patchState` and the latest epoch; the room
   * then receives an `update` event. When the channel is not joined (not yet, or
   * reconnecting), or the socket drops before the acknowledgement, the patch is kept and sent
   * with the next join or resume (`queued: true`). It rejects on a refused patch
   * (`payload_too_large`, `invalid_payload`) and on `timeout`.
   */
  async setState(patch: PresenceStatePatch): Promise<SetStateResult> {
    if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) {
      throw new RealtimeError('invalid_payload', 'setState: the patch must be a JSON object');
    }
    const clean = dropUndefined(patch);
    if (this.statusValue === 'joined' && this.client.connected) {
      try {
        const ack = await this.heartbeat(clean, true);
        this.baseState = mergeState(this.baseState, clean);
        this.persist();
        return { epoch: ack.epoch, changed: ack.changed, queued: false };
      } catch (err) {
        if (!isRealtimeError(err) || !['disconnected', 'not_joined'].includes(err.code)) throw err;
      }
    }
    if (!this.wanted) {
      this.baseState = mergeState(this.baseState, clean);
    } else {
      this.pendingPatch = { ...(this.pendingPatch ?? {}), ...clean };
      this.persist();
    }
    return { epoch: this.epoch, changed: false, queued: true };
  }

  /**
   * loadMore loads the next page of the room's connections with `presence:members` (of
   * `pageSize`) and merges it into {@link members}: each page was read at its seq, and the
   * events applied since then win over its listing. It resolves with the page, or null when
   * nothing was merged: the view is already complete, or a sync replaced the view meanwhile
   * (the channel then loads again the pages it had). It rejects with `not_joined` when the
   * channel is not joined, and with the server's error. In `count` and `none` mode the pages
   * are a picture of the room at their seq: no events keep them live; in `count` mode, once
   * the count changes, the view is no longer complete and the next loadMore starts a new
   * picture from the first page.
   */
  loadMore(): Promise<PresenceMembersPage | null> {
    if (this.statusValue !== 'joined') {
      return Promise.reject(new RealtimeError('not_joined', `room ${this.roomId}: loadMore needs a joined channel`));
    }
    if (this.completeValue) return Promise.resolve(null);
    this.pagesWanted = Math.max(this.pagesWanted, this.pagesLoaded + 1);
    return this.queuePage();
  }

  /**
   * loadAll loads every page still missing (see {@link loadMore}) and resolves once the view
   * is complete. After a sync replaced the view, the channel loads all pages again.
   */
  async loadAll(): Promise<void> {
    this.pagesWanted = Infinity;
    while (!this.completeValue) {
      if (this.statusValue !== 'joined') {
        throw new RealtimeError('not_joined', `room ${this.roomId}: loadAll needs a joined channel`);
      }
      await this.queuePage();
    }
  }

  /**
   * heartbeatNow sends a heartbeat at once (and restarts the schedule). The channel calls it
   * when a hidden tab is shown again.
   */
  heartbeatNow(): Promise<PresenceHeartbeatAck> {
    this.stopHeartbeat();
    return this.beat();
  }

  /** @internal Called by RealtimeClient.disconnect: leave without waiting for an answer. */
  detach(): void {
    const inRoom = this.selfValue !== null || this.joinInFlight;
    this.stop('left');
    if (inRoom) this.client.send('presence:leave', {});
  }

  // --- joining ---------------------------------------------------------------------------

  private onConnect(): void {
    if (!this.wanted || this.probe) return;
    this.startJoin(this.selfValue ? (this.reloading ? 'reload' : 'resume') : 'join');
  }

  /** onConnectFailed fails a join() still waiting once the client has given up connecting. */
  private onConnectFailed(err: RealtimeError): void {
    if (this.joinWaiter && !this.client.connected && this.client.status === 'disconnected') {
      this.stop('idle', err);
    }
  }

  private onDisconnect(): void {
    if (!this.wanted) return;
    this.halt();
    this.setStatus('reconnecting');
  }

  /** halt stops the session's machinery: timers, retries, a pending join and its buffer. */
  private halt(): void {
    this.gen++;
    this.stopHeartbeat();
    this.clearRetry();
    this.joinInFlight = false;
    this.buffering = false;
    this.buffer = [];
  }

  private startJoin(kind: JoinKind): void {
    const gen = ++this.gen;
    this.stopHeartbeat();
    this.clearRetry();
    this.buffer = [];
    this.buffering = true;
    this.joinInFlight = true;
    this.setStatus('joining');

    const resume = (kind === 'resume' || kind === 'reload') && this.selfValue ? { ...this.selfValue } : undefined;
    if (kind === 'rejoin') this.selfValue = null;
    const sentPatch = this.pendingPatch;
    const desired = this.state;
    const payload: PresenceJoinPayload = { roomId: this.roomId, userId: this.userId };
    if (resume) payload.resume = resume;
    if (this.eventMode !== 'each') payload.events = this.eventMode;
    if (this.snapshotMode !== 'full') payload.snapshot = this.snapshotMode;
    if (this.snapshotMode === 'page' && this.pageSize !== undefined) payload.pageSize = this.pageSize;
    // Coming back: ask for what was missed since the last event seen (revision 3).
    const since = kind !== 'join' && this.liveEvents() ? this.position.since(this.seqValue) : undefined;
    if (since) payload.since = since;
    if (kind === 'resume') {
      if (sentPatch) payload.state = sentPatch;
    } else if (Object.keys(desired).length > 0) {
      payload.state = desired;
    }
    this.client.emit('presence:join', payload, { timeoutMs: this.ackTimeoutMs }).then(
      (ack) => {
        if (gen === this.gen) this.onJoined(ack, kind, resume, sentPatch, desired);
      },
      (err: unknown) => {
        if (gen === this.gen) this.onJoinFailed(toRealtimeError(err), kind);
      },
    );
  }

  private onJoined(
    ack: PresenceJoinAck,
    kind: JoinKind,
    resume: PresenceSelf | undefined,
    sentPatch: PresenceStatePatch | null,
    desired: PresenceState,
  ): void {
    this.joinInFlight = false;
    this.reloading = false;
    const resumed = resume !== undefined && ack.self.connId === resume.connId;
    this.selfValue = { connId: ack.self.connId, epoch: ack.self.epoch };
    this.hold(ack.self.connId);
    // Patches made while the join was in flight are still to be sent.
    const newer = this.pendingPatch !== sentPatch ? this.pendingPatch : null;
    const mine = listOf(ack.snapshot)?.find((c) => c.connId === ack.self.connId);
    if (mine) {
      this.baseState = { ...(mine.state ?? {}) };
    } else if (ack.recovered && !resumed && kind === 'resume') {
      // Recovered (no lists in the snapshot) on a fresh connection joined with the patch alone.
      this.baseState = mergeState({}, sentPatch ?? {});
    } else if (!(ack.recovered && resumed)) {
      // A recovered resume keeps its base: the replayed update, if any, sets it.
      this.baseState = desired;
    }
    // A resume the server could not honour became a fresh connection that got only the
    // patch as its state: bring it to the state the channel wants.
    const fix = resumed ? {} : diffState(this.baseState, desired);
    this.pendingPatch = Object.keys(fix).length > 0 || newer ? { ...fix, ...(newer ?? {}) } : null;
    this.missed = 0;
    this.missedReported = false;
    this.retryCount = 0;
    this.gapSyncs = 0;
    this.setStatus('joined');
    const reason = kind === 'resume' || kind === 'reload' ? (resumed ? 'resume' : 'join') : kind;
    this.position.epoch = ack.history?.epoch ?? null;
    const recovery = this.noteRecovery(ack);
    const snapshot = recovery?.recovered
      ? this.applyRecovered(kind === 'reload', reason)
      : this.applySnapshot(ack.snapshot, reason);
    this.persist();
    const waiter = this.joinWaiter;
    this.joinWaiter = null;
    waiter?.resolve({ self: { ...this.selfValue }, snapshot, resumed, recovery });
    if (this.statusValue !== 'joined') return;
    this.scheduleHeartbeat(this.intervalMs);
    if (this.pendingPatch) {
      const patch = this.pendingPatch;
      this.pendingPatch = null;
      this.setState(patch).catch((err) => this.dispatch('error', toRealtimeError(err)));
    }
  }

  private onJoinFailed(err: RealtimeError, kind: JoinKind): void {
    this.joinInFlight = false;
    this.buffering = false;
    this.buffer = [];
    if (err.code === 'disconnected') return; // onConnect joins again.
    if (err.code === 'already_joined' && !this.client.otherChannelActive(this)) {
      // The server holds this socket in a room although the channel has no connection (an
      // acknowledgement was lost): leave that room, then join again.
      const gen = this.gen;
      this.client.emit('presence:leave', {}, { timeoutMs: this.ackTimeoutMs }).then(
        () => {
          if (gen === this.gen && this.wanted) this.startJoin(kind === 'resume' || kind === 'reload' ? 'join' : kind);
        },
        (e: unknown) => {
          if (gen === this.gen) this.onJoinFailed(toRealtimeError(e), kind);
        },
      );
      return;
    }
    const waiter = this.joinWaiter;
    if (waiter || PERMANENT_JOIN_ERRORS.has(err.code)) {
      this.stop('idle', err);
      if (!waiter) this.dispatch('error', err);
      return;
    }
    // An automatic re-join that may work later (timeout, unavailable, rate_limited...).
    this.dispatch('error', err);
    this.retry(() => this.startJoin(kind));
  }

  /** stop ends the channel's session locally: no timers, no view, no pending join. */
  private stop(status: 'idle' | 'left', reason?: RealtimeError): void {
    this.wanted = false;
    this.halt();
    this.probe = null;
    this.reloading = false;
    this.resyncPending = false;
    this.hold(null);
    if (this.store) removeRecord(this.store, this.storeKey);
    this.detachPagehide?.();
    this.detachPagehide = null;
    this.selfValue = null;
    this.seqValue = 0;
    this.position.reset();
    this.recoveryValue = null;
    this.countValue = { connections: 0, members: 0 };
    this.resetPaging();
    this.heldCount = null;
    this.missed = 0;
    this.missedReported = false;
    this.members.clear();
    if (this.pendingPatch) {
      this.baseState = mergeState(this.baseState, this.pendingPatch);
      this.pendingPatch = null;
    }
    this.detachVisibility?.();
    this.detachVisibility = null;
    const waiter = this.joinWaiter;
    this.joinWaiter = null;
    waiter?.reject(reason ?? new RealtimeError('closed', 'the channel left before it joined'));
    this.setStatus(status);
    this.dispatch('change');
  }

  // --- the view --------------------------------------------------------------------------

  private applySnapshot(raw: PresenceSnapshot | PresenceCountSnapshot, reason: PresenceSyncReason): PresenceSnapshot {
    const connections = listOf(raw);
    let snapshot: PresenceSnapshot;
    const before = this.countValue;
    this.resetPaging();
    if (connections) {
      snapshot = raw as PresenceSnapshot;
      this.listed = true;
      this.members.replace(connections);
      const count = snapshot.count ?? { connections: connections.length, members: (snapshot.members ?? []).length };
      this.countValue = { connections: count.connections, members: count.members };
      if (snapshot.next !== undefined) {
        // A page snapshot, or a full snapshot the server truncated: page on from there
        // (all of it for a truncated full snapshot).
        this.pagesLoaded = 1;
        this.nextAfter = snapshot.next;
        this.completeValue = snapshot.next === null;
        if (snapshot.truncated) this.pagesWanted = Infinity;
      } else {
        this.completeValue = true;
      }
    } else {
      const c = (raw as PresenceCountSnapshot).count ?? { connections: 0, members: 0 };
      snapshot = { roomId: raw.roomId, seq: raw.seq, members: [], connections: [], count: { ...c } };
      this.members.clear();
      this.countValue = { connections: c.connections, members: c.members };
    }
    this.seqValue = snapshot.seq;
    const countChanged = !sameCount(before, this.countValue);
    const self = this.selfValue;
    if (self && connections) {
      const mine = connections.find((c) => c.connId === self.connId);
      if (mine) {
        self.epoch = Math.max(self.epoch, mine.epoch);
        this.baseState = { ...(mine.state ?? {}) };
      }
    }
    this.buffer = this.buffer.filter((e) => e.seq > snapshot.seq);
    this.buffering = false;
    const held = this.heldCount;
    this.heldCount = null;
    this.dispatch('sync', { reason, snapshot, self: { ...(self ?? { connId: '', epoch: 0 }) } });
    if (countChanged) this.dispatch('count', { ...this.countValue });
    this.dispatch('change');
    this.persist();
    if (this.resyncPending && this.statusValue === 'joined') {
      this.resyncPending = false;
      void this.sync('resync');
      return snapshot;
    }
    if (held) this.applyCount(held);
    this.drain();
    this.resumePaging();
    return snapshot;
  }

  /** noteRecovery records what a join or sync acknowledgement says of recovery, if anything. */
  private noteRecovery(ack: PresenceJoinAck | PresenceSyncAck): PresenceRecovery | null {
    if (typeof ack.recovered !== 'boolean') return null;
    const r: PresenceRecovery = { recovered: ack.recovered, replayed: ack.replayed ?? 0 };
    this.recoveryValue = r;
    this.dispatch('recover', { ...r });
    return r;
  }

  /**
   * applyRecovered ends a join or sync whose missed events the server replayed: they are in
   * the buffer (the chat messages went to the client's listeners) and follow on from the
   * view. A page loaded by a reload has no view to apply them to: it takes a snapshot.
   */
  private applyRecovered(reload: boolean, reason: PresenceSyncReason): PresenceSnapshot {
    this.buffering = false;
    if (reload || !this.listed) {
      this.buffer = [];
      void this.sync(reason);
      return this.snapshot();
    }
    this.drain();
    // The view is in sync again: `sync` as after a snapshot, with the view as it is now.
    const snapshot = this.snapshot();
    this.dispatch('sync', { reason, snapshot, self: { ...(this.selfValue ?? { connId: '', epoch: 0 }) } });
    this.persist();
    if (this.resyncPending && this.statusValue === 'joined') {
      this.resyncPending = false;
      void this.sync('resync');
    }
    return snapshot;
  }

  /** syncPayload asks `presence:sync` for a snapshot of the channel's snapshot mode. */
  private syncPayload(): PresenceSyncPayload {
    if (this.snapshotMode === 'count') return { snapshot: 'count' };
    if (this.snapshotMode === 'page') {
      return this.pageSize !== undefined ? { snapshot: 'page', pageSize: this.pageSize } : { snapshot: 'page' };
    }
    return {};
  }

  // --- large rooms: batches, counts, pages -----------------------------------------------

  /** onBatch applies a `presence:batch` event by event, as if each had come alone. */
  private onBatch(b: PresenceBatch): void {
    if (!b || b.roomId !== this.roomId || !this.wanted || !Array.isArray(b.events)) return;
    if (!this.buffering && this.statusValue !== 'joined') return;
    for (const e of b.events) {
      if (e && e.roomId === this.roomId && this.buffer.length < MAX_BUFFERED) this.buffer.push(e);
    }
    this.drain();
  }

  /** onCount applies a `presence:count`; counts skip seqs by design, so no gap is looked for. */
  private onCount(c: PresenceCountEvent): void {
    if (!c || c.roomId !== this.roomId || !this.wanted || !c.count) return;
    if (this.buffering) {
      if (!this.heldCount || c.seq > this.heldCount.seq) this.heldCount = c;
      return;
    }
    if (this.statusValue === 'joined') this.applyCount(c);
  }

  private applyCount(c: PresenceCountEvent): void {
    if (c.seq <= this.seqValue) return;
    this.seqValue = c.seq;
    if (!this.setCount(c.count)) return;
    if (this.pagesLoaded > 0 && !this.liveEvents()) {
      // The room changed since the pages were read: the next loadMore starts a new picture.
      this.viewGen++;
      this.completeValue = false;
      this.pagesLoaded = 0;
      this.nextAfter = null;
    }
    this.dispatch('change');
  }

  /** liveEvents reports whether events keep the member list live (`each`, `batched`). */
  private liveEvents(): boolean {
    return this.eventMode === 'each' || this.eventMode === 'batched';
  }

  /** setCount sets the room's size and emits `count` when it changed; it reports whether it did. */
  private setCount(count: PresenceCount): boolean {
    if (sameCount(this.countValue, count)) return false;
    this.countValue = { connections: count.connections, members: count.members };
    this.dispatch('count', { ...this.countValue });
    return true;
  }

  private resetPaging(): void {
    this.viewGen++;
    this.listed = false;
    this.completeValue = false;
    this.nextAfter = null;
    this.pagesLoaded = 0;
    this.touched.clear();
    if (this.pageRetryTimer !== undefined) this.scheduler.clearTimeout(this.pageRetryTimer);
    this.pageRetryTimer = undefined;
    if (this.statusValue !== 'joined' || !this.wanted) this.pagesWanted = 0;
  }

  /** queuePage loads the next page once the loads before it are done. */
  private queuePage(): Promise<PresenceMembersPage | null> {
    const run = () => this.loadPage();
    const result = this.pageChain.then(run, run);
    this.pageChain = result.catch(() => undefined);
    return result;
  }

  private async loadPage(): Promise<PresenceMembersPage | null> {
    if (this.completeValue) return null;
    if (this.statusValue !== 'joined') {
      throw new RealtimeError('not_joined', `room ${this.roomId}: loading members needs a joined channel`);
    }
    const view = this.viewGen;
    const payload: PresenceMembersPayload = {};
    if (this.pagesLoaded > 0 && this.nextAfter) payload.after = this.nextAfter;
    if (this.pageSize !== undefined) payload.limit = this.pageSize;
    const ack = await this.client.emit('presence:members', payload, { timeoutMs: this.ackTimeoutMs });
    if (view !== this.viewGen || this.statusValue !== 'joined') return null;
    this.mergePage(ack.page);
    return ack.page;
  }

  /**
   * mergePage adds a page's connections to the view, except those an event newer than the
   * page already decided (updated, removed or added).
   */
  private mergePage(page: PresenceMembersPage): void {
    // Without events, a first page starts a new picture of the room.
    if (this.pagesLoaded === 0 && !this.liveEvents()) this.members.clear();
    for (const c of page.connections ?? []) {
      const decided = this.touched.get(c.connId);
      if (decided !== undefined && decided > page.seq) continue;
      this.members.set(c);
    }
    this.pagesLoaded++;
    this.nextAfter = page.next ?? null;
    if (this.nextAfter === null) {
      this.completeValue = true;
      this.touched.clear();
    }
    // Without events (count, none) the page's count is as good as any: take it when newer.
    if (!this.liveEvents() && page.count && page.seq > this.seqValue) {
      this.seqValue = page.seq;
      this.setCount(page.count);
    }
    this.dispatch('change');
  }

  /** resumePaging loads, in the background, the pages wanted and not yet in the view. */
  private resumePaging(): void {
    if (this.completeValue || !this.listed || this.pagesLoaded >= this.pagesWanted) return;
    if (this.statusValue !== 'joined' || this.buffering) return;
    const view = this.viewGen;
    this.queuePage().then(
      () => {
        if (view === this.viewGen) this.resumePaging();
      },
      (raw: unknown) => {
        if (view !== this.viewGen || this.statusValue !== 'joined') return;
        const err = toRealtimeError(raw);
        if (err.code === 'disconnected') return; // the resume's snapshot pages again
        this.dispatch('error', err);
        if (err.code === 'not_joined') return; // the heartbeat finds out and re-joins
        this.pageRetryTimer = this.scheduler.setTimeout(() => {
          this.pageRetryTimer = undefined;
          if (view === this.viewGen) this.resumePaging();
        }, PAGE_RETRY_MS);
      },
    );
  }

  private onEvent(e: PresenceEvent): void {
    if (!e || e.roomId !== this.roomId || !this.wanted) return;
    if (!this.buffering && this.statusValue !== 'joined') return;
    if (this.buffer.length < MAX_BUFFERED) this.buffer.push(e);
    this.drain();
  }

  /**
   * drain applies held events in seq order while they follow on from the view: older ones
   * are dropped (the view has them), a jump in seq starts a sync. Nothing is applied while a
   * join or sync is in flight.
   */
  private drain(): void {
    this.buffer.sort((a, b) => a.seq - b.seq);
    while (this.buffer.length > 0 && !this.buffering && this.statusValue === 'joined') {
      const e = this.buffer[0]!;
      if (e.seq <= this.seqValue) {
        this.buffer.shift();
      } else if (e.seq === this.seqValue + 1) {
        this.buffer.shift();
        this.gapSyncs = 0;
        this.apply(e);
      } else if (this.gapSyncs < MAX_GAP_SYNCS) {
        this.gapSyncs++;
        void this.sync('gap');
      } else {
        this.acceptGap();
      }
    }
  }

  /** acceptGap applies the held events despite a jump that repeated syncs did not close. */
  private acceptGap(): void {
    const held = this.buffer;
    this.buffer = [];
    this.gapSyncs = 0;
    this.dispatch(
      'error',
      new RealtimeError('seq_gap', `room ${this.roomId}: seq jumped from ${this.seqValue} to ${held[0]?.seq}`),
    );
    for (const e of held) {
      if (e.seq > this.seqValue && !this.buffering && this.statusValue === 'joined') this.apply(e);
    }
  }

  private apply(e: PresenceEvent): void {
    this.seqValue = e.seq;
    if (!this.completeValue) this.touched.set(e.connId, e.seq);
    if (e.count) this.setCount(e.count);
    const existing = this.members.get(e.connId);
    switch (e.type) {
      case 'join':
        this.members.set({
          connId: e.connId,
          userId: e.userId,
          state: e.state ?? {},
          epoch: e.epoch ?? 0,
          lastSeenMs: e.ts,
        });
        break;
      case 'update':
        this.members.set({
          connId: e.connId,
          userId: e.userId,
          state: e.state ?? existing?.state ?? {},
          epoch: e.epoch ?? existing?.epoch ?? 0,
          lastSeenMs: e.ts,
        });
        break;
      case 'leave':
        this.members.remove(e.connId);
        break;
      default:
        return; // an event type from a later protocol version
    }
    const self = this.selfValue;
    const mine = self !== null && e.connId === self.connId;
    if (mine && e.type === 'update') {
      if (typeof e.epoch === 'number') self.epoch = Math.max(self.epoch, e.epoch);
      if (e.state) this.baseState = { ...e.state };
      this.persist();
    }
    this.dispatch(e.type, e);
    this.dispatch('change');
    if (mine && e.type === 'leave' && this.wanted && this.statusValue === 'joined') {
      // The server removed this connection (expired, ...): join again.
      this.startJoin('rejoin');
    }
  }

  /**
   * sync fetches a snapshot with `presence:sync` and replaces the view; events arriving
   * meanwhile are held and applied after it when their seq is newer.
   */
  private async sync(reason: PresenceSyncReason): Promise<void> {
    if (this.buffering || this.statusValue !== 'joined') return;
    const gen = this.gen;
    this.buffering = true;
    const payload = this.syncPayload();
    // A gap or a resync: ask for just what was missed, when the view holds what came before.
    const since =
      (reason === 'gap' || reason === 'resync') && this.listed && this.liveEvents()
        ? this.position.since(this.seqValue)
        : undefined;
    if (since) payload.since = since;
    try {
      const ack: PresenceSyncAck = await this.client.emit('presence:sync', payload, { timeoutMs: this.ackTimeoutMs });
      if (gen !== this.gen) return;
      if (this.noteRecovery(ack)?.recovered) {
        this.applyRecovered(false, reason);
      } else {
        this.applySnapshot(ack.snapshot, reason);
      }
    } catch (raw) {
      if (gen !== this.gen) return;
      const err = toRealtimeError(raw);
      this.buffering = false;
      if (err.code === 'not_joined') {
        this.startJoin('rejoin');
      } else if (err.code !== 'disconnected') {
        this.dispatch('error', err);
        this.retry(() => void this.sync(reason));
      }
    }
  }

  // --- heartbeats ------------------------------------------------------------------------

  private scheduleHeartbeat(delayMs: number): void {
    this.stopHeartbeat();
    this.heartbeatTimer = this.scheduler.setTimeout(() => {
      this.heartbeatTimer = undefined;
      void this.beat().catch(() => undefined);
    }, delayMs);
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer !== undefined) this.scheduler.clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  /** beat sends one scheduled heartbeat and schedules the next one an interval after it. */
  private beat(): Promise<PresenceHeartbeatAck> {
    const gen = this.gen;
    const id = ++this.beatId;
    const startedAt = Date.now();
    const result = this.heartbeat(undefined, false);
    const next = () => {
      if (gen !== this.gen || id !== this.beatId || this.statusValue !== 'joined') return;
      this.scheduleHeartbeat(Math.max(0, this.intervalMs - (Date.now() - startedAt)));
    };
    result.then(next, next);
    return result;
  }

  /**
   * heartbeat queues one `presence:heartbeat`. Heartbeats go out one at a time, so that each
   * carries the epoch the previous one produced (two in flight could make the second stale).
   */
  private heartbeat(patch: PresenceStatePatch | undefined, isPatch: boolean): Promise<PresenceHeartbeatAck> {
    const run = () => this.sendHeartbeat(patch, isPatch);
    const result = this.heartbeatChain.then(run, run);
    this.heartbeatChain = result.catch(() => undefined);
    return result;
  }

  private async sendHeartbeat(
    patch: PresenceStatePatch | undefined,
    isPatch: boolean,
    retried = false,
  ): Promise<PresenceHeartbeatAck> {
    const gen = this.gen;
    const self = this.selfValue;
    if (this.statusValue !== 'joined' || !self || !this.client.connected) {
      throw new RealtimeError('disconnected', 'presence:heartbeat: not joined', { event: 'presence:heartbeat' });
    }
    this.lastHeartbeatAt = Date.now();
    const payload = patch ? { epoch: self.epoch, patchState: patch } : { epoch: self.epoch };
    try {
      const ack = await this.client.emit('presence:heartbeat', payload, { timeoutMs: this.heartbeatTimeoutMs });
      if (gen === this.gen && this.selfValue) {
        const before = this.selfValue.epoch;
        if (typeof ack.epoch === 'number') this.selfValue.epoch = Math.max(before, ack.epoch);
        this.missed = 0;
        this.missedReported = false;
        if (this.selfValue.epoch !== before) this.persist();
      }
      return ack;
    } catch (raw) {
      const err = toRealtimeError(raw);
      if (gen !== this.gen) throw err;
      if (err.code === 'not_joined') {
        this.startJoin('rejoin');
      } else if (err.code === 'stale_epoch') {
        await this.sync('stale_epoch');
        if (isPatch && !retried && gen === this.gen && this.statusValue === 'joined') {
          return this.sendHeartbeat(patch, isPatch, true);
        }
      } else if (MISSED_HEARTBEAT_ERRORS.has(err.code)) {
        this.countMissed(err);
      }
      throw err;
    }
  }

  private countMissed(err: RealtimeError): void {
    this.missed++;
    if (this.missed >= this.maxMissed && !this.missedReported) {
      this.missedReported = true;
      this.dispatch(
        'error',
        new RealtimeError(
          'heartbeat_timeout',
          `room ${this.roomId}: ${this.missed} heartbeats in a row got no acknowledgement (last: ${err.code})`,
          { event: 'presence:heartbeat', cause: err },
        ),
      );
    }
  }

  // --- background tabs -------------------------------------------------------------------

  private attachVisibility(): void {
    if (!this.heartbeatOnVisible || this.detachVisibility) return;
    const doc = (globalThis as { document?: any }).document;
    if (!doc || typeof doc.addEventListener !== 'function') return;
    const onVisibility = () => {
      if (doc.visibilityState !== 'visible') return;
      if (this.statusValue !== 'joined' || !this.client.connected) return;
      if (Date.now() - this.lastHeartbeatAt < 1000) return;
      void this.heartbeatNow().catch(() => undefined);
    };
    doc.addEventListener('visibilitychange', onVisibility);
    this.detachVisibility = () => doc.removeEventListener('visibilitychange', onVisibility);
  }

  // --- page reloads ----------------------------------------------------------------------

  /**
   * storedRecord returns, on the first join of this page only, the connection a previous
   * page of this tab stored for this room and user, or null.
   */
  private storedRecord(): ReloadRecord | null {
    if (!this.store || this.reloadChecked) return null;
    this.reloadChecked = true;
    const r = readRecord(this.store, this.storeKey);
    if (!r || r.roomId !== this.roomId || r.userId !== this.userId) return null;
    return r;
  }

  /**
   * probeRecord asks the other pages whether one of them holds the stored connection. If
   * none does, the page before a reload was its holder: the channel resumes it with the
   * stored state. Otherwise this page is a duplicated tab and joins fresh. The socket
   * connects meanwhile; the join goes out when both are done.
   */
  private probeRecord(record: ReloadRecord): void {
    const probe = {};
    this.probe = probe;
    void heldElsewhere(record.connId, this.reloadProbeMs).then((elsewhere) => {
      if (this.probe !== probe) return;
      this.probe = null;
      if (!elsewhere) {
        this.selfValue = { connId: record.connId, epoch: record.epoch };
        this.hold(record.connId);
        this.baseState = { ...record.state };
        if (record.seq !== undefined) {
          this.seqValue = record.seq;
          this.position.restore(record.seq, record.sub ?? 0, record.historyEpoch ?? null);
        }
        this.reloading = true;
      }
      if (this.client.connected) this.onConnect();
    });
  }

  /**
   * hold makes this page the holder of `connId` (null: of nothing), so that it answers a
   * duplicated tab's probe. Without reload resume there is no record to copy: nothing to do.
   */
  private hold(connId: string | null): void {
    if (connId === this.heldConnId || (!this.store && connId !== null)) return;
    this.release?.();
    this.release = connId ? holdConnection(connId) : null;
    this.heldConnId = connId;
  }

  /** persist stores the connection for a reload: on every epoch or state change and on pagehide. */
  private persist(): void {
    const self = this.selfValue;
    if (!this.store || !self || !this.wanted || this.reloading) return;
    writeRecord(this.store, this.storeKey, {
      roomId: this.roomId,
      userId: this.userId,
      connId: self.connId,
      epoch: self.epoch,
      state: this.state,
      ...(this.position.epoch !== null && this.seqValue > 0
        ? { seq: this.seqValue, sub: this.position.sub(this.seqValue), historyEpoch: this.position.epoch }
        : {}),
    });
  }

  /**
   * attachPagehide stores the connection when the page goes away. The page then stops
   * holding it: the next page of the tab (a reload) may take it. A page restored from the
   * back/forward cache holds it again.
   */
  private attachPagehide(): void {
    if (!this.store || this.detachPagehide) return;
    const g = globalThis as { addEventListener?: any; removeEventListener?: any };
    if (typeof g.addEventListener !== 'function') return;
    const onPagehide = () => {
      this.persist();
      this.hold(null);
    };
    const onPageshow = () => {
      if (this.wanted && this.selfValue) this.hold(this.selfValue.connId);
    };
    g.addEventListener('pagehide', onPagehide);
    g.addEventListener('pageshow', onPageshow);
    this.detachPagehide = () => {
      g.removeEventListener('pagehide', onPagehide);
      g.removeEventListener('pageshow', onPageshow);
    };
  }

  // --- server resync ---------------------------------------------------------------------

  /** onResync answers the server's `presence:resync` with a `presence:sync`. */
  private onResync(r: PresenceResync): void {
    if (!r || r.roomId !== this.roomId || !this.wanted) return;
    if (this.buffering || this.statusValue !== 'joined') {
      // A join or sync is in flight: sync again once it is done.
      this.resyncPending = this.statusValue === 'joined' || this.joinInFlight;
      return;
    }
    void this.sync('resync');
  }

  // --- helpers ---------------------------------------------------------------------------

  private retry(fn: () => void): void {
    this.clearRetry();
    const delay = Math.min(this.retryDelayMs * 2 ** this.retryCount, 30_000);
    this.retryCount++;
    const gen = this.gen;
    this.retryTimer = this.scheduler.setTimeout(() => {
      this.retryTimer = undefined;
      if (gen === this.gen && this.wanted && this.client.connected) fn();
    }, delay);
  }

  private clearRetry(): void {
    if (this.retryTimer !== undefined) this.scheduler.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private setStatus(status: PresenceChannelStatus): void {
    if (this.statusValue === status) return;
    this.statusValue = status;
    this.dispatch('status', status);
  }
}

/** mergeState shallow-merges `patch` into `state`; a key set to null is deleted. */
export function mergeState(state: PresenceState, patch: PresenceStatePatch): PresenceState {
  const out: PresenceState = { ...state };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else if (v !== undefined) out[k] = v;
  }
  return out;
}

/** diffState returns the patch that turns `from` into `to`. */
function diffState(from: PresenceState, to: PresenceState): PresenceStatePatch {
  const out: PresenceStatePatch = {};
  for (const [k, v] of Object.entries(to)) if (!jsonEqual(from[k], v)) out[k] = v;
  for (const k of Object.keys(from)) if (!(k in to)) out[k] = null;
  return out;
}

function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

function dropUndefined(patch: PresenceStatePatch): PresenceStatePatch {
  const out: PresenceStatePatch = {};
  for (const [k, v] of Object.entries(patch)) if (v !== undefined) out[k] = v;
  return out;
}

/** listOf returns a snapshot's connections, or undefined for a count snapshot. */
function listOf(s: PresenceSnapshot | PresenceCountSnapshot): PresenceSnapshot['connections'] | undefined {
  const list = (s as Partial<PresenceSnapshot>).connections;
  return Array.isArray(list) ? list : undefined;
}

function sameCount(a: PresenceCount, b: PresenceCount): boolean {
  return a.connections === b.connections && a.members === b.members;
}

function positive(value: number | undefined, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : fallback;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A join() nobody awaits must not surface as an unhandled rejection.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

function toRealtimeError(err: unknown): RealtimeError {
  if (err instanceof RealtimeError) return err;
  return new RealtimeError('internal', err instanceof Error ? err.message : String(err), { cause: err });
}
