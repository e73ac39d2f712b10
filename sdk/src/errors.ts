import { ERROR_CODES, type AckFailure, type ErrorCode } from './protocol.js';

/**
 * Codes the SDK itself produces, next to the protocol's {@link ErrorCode}s:
 * - `timeout`: no acknowledgement within the time allowed;
 * - `disconnected`: the socket was not connected, or dropped before the acknowledgement came;
 * - `heartbeat_timeout`: a presence channel missed `maxMissedHeartbeats` heartbeats in a row;
 * - `connect_failed`: the connection was refused (handshake error, Socket.IO error packet,
 *   reconnection attempts exhausted);
 * - `closed`: the operation was cancelled by `leave()` or `disconnect()`;
 * - `seq_gap`: events of a room kept going missing after repeated `presence:sync` calls.
 */
export type ClientErrorCode =
  | 'timeout'
  | 'disconnected'
  | 'heartbeat_timeout'
  | 'connect_failed'
  | 'closed'
  | 'seq_gap';

/** Every code a {@link RealtimeError} can carry. */
export type RealtimeErrorCode = ErrorCode | ClientErrorCode;

/**
 * RealtimeError is the one error type the SDK rejects with and reports. `code` is either
 * the protocol code of a failed acknowledgement (`not_joined`, `forbidden`, ...) or one of
 * the SDK's own {@link ClientErrorCode}s.
 */
export class RealtimeError extends Error {
  readonly code: RealtimeErrorCode;
  /** The client-to-server event the error belongs to, when there is one. */
  readonly event?: string;
  /** The underlying cause (a transport error, the raw acknowledgement, ...). */
  readonly cause?: unknown;

  constructor(code: RealtimeErrorCode, message: string, options: { event?: string; cause?: unknown } = {}) {
    super(message);
    this.name = 'RealtimeError';
    this.code = code;
    if (options.event !== undefined) this.event = options.event;
    if (options.cause !== undefined) this.cause = options.cause;
    Object.setPrototypeOf(this, new.target.prototype);
  }

  /** isProtocolError reports whether the code came from the server's acknowledgement. */
  get isProtocolError(): boolean {
    return (ERROR_CODES as readonly string[]).includes(this.code);
  }

  /** fromAck builds the error for a `{ ok: false }` acknowledgement of `event`. */
  static fromAck(ack: AckFailure, event?: string): RealtimeError {
    const body = ack.error ?? ({} as Partial<AckFailure['error']>);
    const code = (ERROR_CODES as readonly string[]).includes(body.code as string)
      ? (body.code as ErrorCode)
      : 'internal';
    const message = typeof body.message === 'string' && body.message ? body.message : code;
    return new RealtimeError(code, message, { event, cause: ack });
  }
}

/** AckTimeoutError is the {@link RealtimeError} (code `timeout`) for an acknowledgement that did not come in time. */
export class AckTimeoutError extends RealtimeError {
  readonly timeoutMs: number;

  constructor(event: string, timeoutMs: number) {
    super('timeout', `no acknowledgement for ${event} within ${timeoutMs} ms`, { event });
    this.name = 'AckTimeoutError';
    this.timeoutMs = timeoutMs;
  }
}

/** isRealtimeError reports whether `err` is a {@link RealtimeError}, optionally with the given code. */
export function isRealtimeError(err: unknown, code?: RealtimeErrorCode): err is RealtimeError {
  return err instanceof RealtimeError && (code === undefined || err.code === code);
}
