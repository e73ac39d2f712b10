import type { PresenceConnection, PresenceState } from './protocol.js';

/** One user in a room, with all of that user's connections (tabs, devices). */
export interface PresenceUser {
  userId: string;
  /** The user's connections, oldest first. */
  connections: PresenceConnection[];
  /** The state of the user's most recently seen connection. */
  state: PresenceState;
  /** The latest `lastSeenMs` of the user's connections. */
  lastSeenMs: number;
}

/**
 * PresenceMembers is the live view of a room a {@link PresenceChannel} keeps in sync, by
 * connection and by user. It is replaced from each snapshot and updated by each event; read
 * it after the channel's `sync`, `join`, `update`, `leave` or `change` events. The
 * connections it returns are copies.
 */
export class PresenceMembers {
  private readonly byConn = new Map<string, PresenceConnection>();

  /** The number of connections. */
  get size(): number {
    return this.byConn.size;
  }

  /** The number of distinct users. */
  get userCount(): number {
    return this.userIds().length;
  }

  /** has reports whether connection `connId` is present. */
  has(connId: string): boolean {
    return this.byConn.has(connId);
  }

  /** hasUser reports whether `userId` has at least one connection present. */
  hasUser(userId: string): boolean {
    for (const c of this.byConn.values()) if (c.userId === userId) return true;
    return false;
  }

  /** get returns connection `connId`, or undefined. */
  get(connId: string): PresenceConnection | undefined {
    const c = this.byConn.get(connId);
    return c ? copy(c) : undefined;
  }

  /** connections returns every connection, in the order they joined. */
  connections(): PresenceConnection[] {
    return [...this.byConn.values()].map(copy);
  }

  /** userIds returns each present userId once, in the order they first joined. */
  userIds(): string[] {
    return [...new Set([...this.byConn.values()].map((c) => c.userId))];
  }

  /** user returns `userId` with its connections, or undefined when it has none. */
  user(userId: string): PresenceUser | undefined {
    const conns = this.connections().filter((c) => c.userId === userId);
    return conns.length ? toUser(userId, conns) : undefined;
  }

  /** users returns every present user with its connections, in the order they first joined. */
  users(): PresenceUser[] {
    const groups = new Map<string, PresenceConnection[]>();
    for (const c of this.connections()) {
      const list = groups.get(c.userId);
      if (list) list.push(c);
      else groups.set(c.userId, [c]);
    }
    return [...groups].map(([userId, conns]) => toUser(userId, conns));
  }

  toJSON(): PresenceConnection[] {
    return this.connections();
  }

  /** @internal replace sets the view to exactly `connections` (a snapshot). */
  replace(connections: PresenceConnection[]): void {
    this.byConn.clear();
    for (const c of connections) this.byConn.set(c.connId, copy(c));
  }

  /** @internal set adds or replaces one connection. */
  set(connection: PresenceConnection): void {
    this.byConn.set(connection.connId, copy(connection));
  }

  /** @internal remove deletes one connection and reports whether it was present. */
  remove(connId: string): boolean {
    return this.byConn.delete(connId);
  }

  /** @internal clear empties the view. */
  clear(): void {
    this.byConn.clear();
  }
}

function copy(c: PresenceConnection): PresenceConnection {
  return { connId: c.connId, userId: c.userId, state: { ...(c.state ?? {}) }, epoch: c.epoch, lastSeenMs: c.lastSeenMs };
}

function toUser(userId: string, connections: PresenceConnection[]): PresenceUser {
  let latest = connections[0]!;
  for (const c of connections) if (c.lastSeenMs >= latest.lastSeenMs) latest = c;
  return { userId, connections, state: { ...latest.state }, lastSeenMs: latest.lastSeenMs };
}
