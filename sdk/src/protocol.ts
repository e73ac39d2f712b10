/**
 * Wire shapes of protocol version 1, revision 3 (see PROTOCOL.md at the repository root).
 *
 * Every type here mirrors one shape of the contract exactly; the SDK adds nothing to
 * what travels on the wire.
 */

/** The protocol version these types describe. */
export const PROTOCOL_VERSION = 1;

/** Error codes a server acknowledgement can carry, in the protocol's order of precedence. */
export const ERROR_CODES = [
  'rate_limited',
  'invalid_payload',
  'payload_too_large',
  'forbidden',
  'already_joined',
  'not_joined',
  'stale_epoch',
  'unauthorized',
  'unavailable',
  'internal',
] as const;

/** An error code from a server acknowledgement (`{ ok: false, error: { code } }`). */
export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * A connection's presence state: a JSON object (never an array or a scalar), at most
 * 4096 bytes as compact UTF-8 JSON once merged.
 */
export type PresenceState = Record<string, unknown>;

/**
 * A patch for presence state: shallow-merged into the current state, where a key set to
 * `null` is deleted.
 */
export type PresenceStatePatch = Record<string, unknown>;

/** The `error` object of a failed acknowledgement. */
export interface AckErrorBody {
  code: ErrorCode;
  message: string;
}

/** A failed acknowledgement. */
export interface AckFailure {
  ok: false;
  error: AckErrorBody;
}

/** A successful acknowledgement with its fields. */
export type AckSuccess<T extends object = Record<never, never>> = { ok: true } & T;

/** Any acknowledgement: every acknowledgement is one JSON object of this shape. */
export type Ack<T extends object = Record<never, never>> = AckSuccess<T> | AckFailure;

/** The identity of one presence connection held by a client. */
export interface PresenceSelf {
  connId: string;
  epoch: number;
}

/** One connection in a room. */
export interface PresenceConnection {
  connId: string;
  userId: string;
  state: PresenceState;
  epoch: number;
  lastSeenMs: number;
}

/** A room's presence snapshot, as returned by join, sync and the HTTP API. */
export interface PresenceSnapshot {
  roomId: string;
  /** The seq of the last event the snapshot reflects. */
  seq: number;
  /** Each userId once, however many connections it has. */
  members: string[];
  connections: PresenceConnection[];
  /** The room's size (revision 3: on a page snapshot or a truncated full snapshot). */
  count?: PresenceCount;
  /**
   * Revision 3, on a page snapshot or a truncated full snapshot: the connId to pass as
   * `after` to `presence:members` for the next page, null on the last page.
   */
  next?: string | null;
  /** Revision 3: the server capped this full snapshot (PRESENCE_MAX_SNAPSHOT); page on from `next`. */
  truncated?: true;
}

/**
 * A snapshot in count mode (revision 3, `snapshot: "count"`): the room's seq and size,
 * without members or connections.
 */
export interface PresenceCountSnapshot {
  roomId: string;
  /** The seq of the last event the count reflects. */
  seq: number;
  count: PresenceCount;
}

/**
 * How a socket receives the room's presence events (revision 3, `events` of
 * `presence:join`): `each` one `presence:event` per event (the default); `batched` one
 * `presence:batch` per server tick; `count` at most one `presence:count` per tick;
 * `none` no events at all (nor `presence:resync`).
 */
export type PresenceEventMode = 'each' | 'batched' | 'count' | 'none';

/**
 * What the snapshot of a join or sync holds (revision 3): `full` every connection (the
 * default), `count` only seq and counts, `page` the first page of `pageSize` connections.
 */
export type PresenceSnapshotMode = 'full' | 'count' | 'page';

/**
 * A page of the room's connections (revision 3): a `presence:members` answer, a page
 * snapshot, or a truncated full snapshot. It was read at its `seq`: events with a higher
 * seq override its listing.
 */
export interface PresenceMembersPage {
  roomId: string;
  seq: number;
  count: PresenceCount;
  /** Each user of the page once. */
  members: string[];
  /** The page's connections, in byte order of connId. */
  connections: PresenceConnection[];
  /** The connId to pass as `after` for the next page; null on the last page. */
  next: string | null;
  /** Set on a full snapshot the server capped (PRESENCE_MAX_SNAPSHOT). */
  truncated?: true;
}

/** Payload of `presence:join`. */
export interface PresenceJoinPayload {
  roomId: string;
  userId: string;
  state?: PresenceState | null;
  /** Take over a connection this client held on a previous socket. */
  resume?: PresenceSelf;
  /** Revision 3: how the socket receives the room's events (default `each`). */
  events?: PresenceEventMode;
  /** Revision 3: what the ack's snapshot holds (default `full`). */
  snapshot?: PresenceSnapshotMode;
  /** Revision 3: the size of a page snapshot, 1 to 1000 (default 100). */
  pageSize?: number;
  /** Revision 3: the position seen last, to recover what was missed since (see Recovery). */
  since?: PresenceSince;
}

/**
 * A position in a room's sequence (revision 3, Recovery): a presence event's `seq` (`sub`
 * 0 or absent), or a chat message's `seq` and `sub`, within the history `epoch`.
 */
export interface PresenceSince {
  seq: number;
  sub?: number;
  epoch: string;
}

/**
 * What a join or sync with `since` says of the room's history (revision 3): `history` when
 * the server keeps histories; `recovered` and `replayed` answer `since`. When `recovered`
 * is true the `replayed` events came before the acknowledgement and the snapshot holds
 * counts only.
 */
export interface PresenceRecoveryAck {
  history?: { epoch: string };
  recovered?: boolean;
  replayed?: number;
}

/**
 * Successful acknowledgement of `presence:join`: a {@link PresenceCountSnapshot} when the
 * join asked for `snapshot: "count"`, else a {@link PresenceSnapshot} (a page, with `next`
 * and `count`, when it asked for `snapshot: "page"` or the server truncated it).
 */
export type PresenceJoinAck = AckSuccess<
  { self: PresenceSelf; snapshot: PresenceSnapshot | PresenceCountSnapshot } & PresenceRecoveryAck
>;

/** Payload of `presence:heartbeat`. */
export interface PresenceHeartbeatPayload {
  epoch?: number;
  patchState?: PresenceStatePatch | null;
}

/** Successful acknowledgement of `presence:heartbeat`. */
export type PresenceHeartbeatAck = AckSuccess<{ epoch: number; changed: boolean }>;

/** Payload of `presence:sync` (none, an empty object, or revision 3's snapshot mode). */
export interface PresenceSyncPayload {
  snapshot?: PresenceSnapshotMode;
  pageSize?: number;
  /** Revision 3: the position seen last, to recover what was missed since. */
  since?: PresenceSince;
}

/** Successful acknowledgement of `presence:sync` (the snapshot as for the join). */
export type PresenceSyncAck = AckSuccess<{ snapshot: PresenceSnapshot | PresenceCountSnapshot } & PresenceRecoveryAck>;

/** Payload of `presence:members` (revision 3). */
export interface PresenceMembersPayload {
  /** The `next` of the previous page; absent for the first page. */
  after?: string;
  /** 1 to 1000, default 100. */
  limit?: number;
}

/** Successful acknowledgement of `presence:members` (revision 3). */
export type PresenceMembersAck = AckSuccess<{ page: PresenceMembersPage }>;

/** Payload of `presence:leave` (none, or an empty object). */
export type PresenceLeavePayload = Record<string, never>;

/** Successful acknowledgement of `presence:leave`. */
export type PresenceLeaveAck = AckSuccess<{ removed: boolean }>;

/** Kind of presence event. */
export type PresenceEventType = 'join' | 'update' | 'leave';

/** Why a connection left. */
export type LeaveReason = 'leave' | 'disconnect' | 'expired';

/** A room's size right after a change. */
export interface PresenceCount {
  connections: number;
  members: number;
}

/** `presence:event`, sent by the server to every socket in the room. */
export interface PresenceEvent {
  type: PresenceEventType;
  roomId: string;
  seq: number;
  userId: string;
  connId: string;
  state?: PresenceState;
  epoch?: number;
  ts: number;
  reason?: LeaveReason;
  /** On `join`: this is the user's first connection in the room. */
  userJoined?: boolean;
  /** On `leave`: this was the user's last connection in the room. */
  userLeft?: boolean;
  count: PresenceCount;
}

/**
 * `presence:batch` (revision 3, events mode `batched`): the events of one server tick, in
 * seq order, exactly those a member in mode `each` gets.
 */
export interface PresenceBatch {
  roomId: string;
  events: PresenceEvent[];
}

/**
 * `presence:count` (revision 3, events mode `count`): at most one per server tick, the
 * room's size after the event of `seq`.
 */
export interface PresenceCountEvent {
  roomId: string;
  seq: number;
  count: PresenceCount;
}

/**
 * `presence:resync`, sent by the server to a joined socket that may have missed events of
 * its room (its node's Redis subscription was interrupted, for one). The client answers
 * with `presence:sync`.
 */
export interface PresenceResync {
  roomId: string;
  /** The room's current seq as far as the server knows. */
  seq: number;
}

/** Payload of `chat:message` sent by a client. */
export interface ChatMessagePayload {
  /** 1 to 2000 Unicode code points. */
  text: string;
}

/** Successful acknowledgement of `chat:message`. */
export type ChatMessageAck = AckSuccess<{ id: string; ts: number }>;

/** `chat:message`, sent by the server to every socket in the sender's room. */
export interface ChatMessage {
  id: string;
  roomId: string;
  userId: string;
  connId: string;
  text: string;
  ts: number;
  /**
   * Revision 3: the message's position in the room's sequence: the seq of the presence
   * event before it, and its number after that event from 1.
   */
  seq?: number;
  sub?: number;
}

/** Payload of `topic:subscribe` (the topics module). */
export interface TopicSubscribePayload {
  /** The topic: the id rules, but at most 100 bytes of UTF-8. */
  topic: string;
}

/** Successful acknowledgement of `topic:subscribe` (subscribing twice is harmless). */
export type TopicSubscribeAck = AckSuccess<{ topic: string }>;

/** Payload of `topic:unsubscribe`. */
export interface TopicUnsubscribePayload {
  topic: string;
}

/** Successful acknowledgement of `topic:unsubscribe`: `removed` is false when the socket was not subscribed. */
export type TopicUnsubscribeAck = AckSuccess<{ removed: boolean }>;

/** `topic:message`, sent by the server to every socket subscribed to the topic, on every node. */
export interface TopicMessage<T = unknown> {
  topic: string;
  /** What the backend published: any JSON value (`null` when it sent none). */
  data: T;
  /** Milliseconds since the Unix epoch, when the server published it. */
  ts: number;
}

/**
 * Body of `POST /v1/topics/{topic}/publish` (a backend call with
 * `Authorization: Bearer <API_TOKEN>`; answered 200 {@link ApiOkResponse}, 401 without the
 * token, 400 for a bad topic or body, 413 over the server's MAX_MESSAGE_BYTES).
 */
export interface TopicPublishRequest<T = unknown> {
  data: T;
}

/**
 * Body of `POST /v1/rooms/{roomId}/emit`, `/v1/users/{userId}/emit` and
 * `/v1/sockets/{socketId}/emit` (a backend call with `Authorization: Bearer <API_TOKEN>`):
 * every socket of the room, user or socket receives `event` with `data` as its one
 * argument (none when `data` is absent). The event's name follows the id rules; Socket.IO's
 * own names and the modules' namespaces (`presence:`, `chat:`, `topic:`) are refused (400).
 */
export interface EmitRequest<T = unknown> {
  event: string;
  data?: T;
  /** Rooms whose sockets are left out. */
  except?: string[];
  /** Socket ids left out. */
  exceptSockets?: string[];
}

/** Body of a successful publish, emit or disconnect call. */
export interface ApiOkResponse {
  ok: true;
}

/** Body of a failed HTTP API call: `code` is the HTTP status. */
export interface ApiErrorResponse {
  code: number;
  message: string;
}

/** Body of `GET /healthz`. */
export interface HealthResponse {
  status: 'ok';
}

/** Body of `GET /v1/rooms/{roomId}/presence`. */
export type RoomPresenceResponse = PresenceSnapshot;

/** Client-to-server events: `[payload, successful acknowledgement]`. */
export interface ClientToServerEvents {
  'presence:join': [PresenceJoinPayload, PresenceJoinAck];
  'presence:heartbeat': [PresenceHeartbeatPayload | undefined, PresenceHeartbeatAck];
  'presence:sync': [PresenceSyncPayload | undefined, PresenceSyncAck];
  'presence:leave': [PresenceLeavePayload | undefined, PresenceLeaveAck];
  'presence:members': [PresenceMembersPayload | undefined, PresenceMembersAck];
  'chat:message': [ChatMessagePayload, ChatMessageAck];
  'topic:subscribe': [TopicSubscribePayload, TopicSubscribeAck];
  'topic:unsubscribe': [TopicUnsubscribePayload, TopicUnsubscribeAck];
}

/** Server-to-client events and their payloads. */
export interface ServerToClientEvents {
  'presence:event': PresenceEvent;
  'presence:batch': PresenceBatch;
  'presence:count': PresenceCountEvent;
  'presence:resync': PresenceResync;
  'chat:message': ChatMessage;
  'topic:message': TopicMessage;
}
