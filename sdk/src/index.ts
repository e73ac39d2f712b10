/**
 * Browser SDK of the realtime presence server.
 *
 * - {@link RealtimeClient}: one Socket.IO connection (socket.io-client 4.8, Engine.IO v4),
 *   events with promised acknowledgements, connection-state events.
 * - {@link PresenceChannel}: presence in one room, kept in sync and healed across reconnects
 *   and page reloads.
 * - {@link Topics} (`client.topics`): topic subscriptions, subscribed again after reconnects.
 */
export { RealtimeClient } from './client.js';
export type {
  AckOf,
  AuthCallback,
  ConnectionStatus,
  EmitOptions,
  EngineLike,
  ManagerLike,
  PayloadOf,
  RealtimeClientEvents,
  RealtimeClientOptions,
  ServerEventListener,
  SocketFactory,
  SocketFactoryOptions,
  SocketLike,
} from './client.js';
export { PresenceChannel, mergeState } from './presence.js';
export type { PresenceRecovery } from './recovery.js';
export type {
  PresenceChannelEvents,
  PresenceChannelOptions,
  PresenceChannelStatus,
  PresenceJoinResult,
  PresenceSyncInfo,
  PresenceSyncReason,
  SetStateResult,
} from './presence.js';
export type { ReloadRecord } from './reload.js';
export { Topics, TopicSubscription, topicProblem } from './topics.js';
export type { TopicHandler, TopicSubscribeOptions, TopicsEvents } from './topics.js';
export { PresenceMembers } from './members.js';
export type { PresenceUser } from './members.js';
export { AckTimeoutError, RealtimeError, isRealtimeError } from './errors.js';
export type { ClientErrorCode, RealtimeErrorCode } from './errors.js';
export { Emitter } from './emitter.js';
export type { EventMap } from './emitter.js';
export { ERROR_CODES, PROTOCOL_VERSION } from './protocol.js';
export type * from './protocol.js';

/** The SDK's version. */
export const VERSION: string = typeof __SDK_VERSION__ === 'string' ? __SDK_VERSION__ : '0.0.0-dev';

declare const __SDK_VERSION__: string | undefined;
