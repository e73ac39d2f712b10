// The SDK (socket.io-client 4.8, Engine.IO v4) against the real Go server, over each
// Engine.IO transport.
import { createHmac } from 'node:crypto';
import { io } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { RealtimeClient, type PresenceChannel, type PresenceEvent, type PresenceSyncInfo } from '../../src/index.js';
import { SERVER_ENV, startRedis, startServer, type RunningRedis, type RunningServer } from '../support/server.js';
import { unique, waitFor, sleep } from '../support/wait.js';

const url = inject('serverUrl');
const clients: RealtimeClient[] = [];
const rawSockets: Array<{ close(): void }> = [];

afterEach(() => {
  for (const c of clients.splice(0)) c.disconnect();
  for (const s of rawSockets.splice(0)) s.close();
});

const room = unique;

/** RawSocket is the part of a socket.io-client socket the tests drive directly. */
interface RawSocket {
  on(event: string, fn: (...args: any[]) => void): void;
  emit(event: string, ...args: any[]): void;
  close(): void;
}

/** record collects a channel's presence and sync events. */
function record(channel: PresenceChannel) {
  const events: PresenceEvent[] = [];
  const syncs: PresenceSyncInfo[] = [];
  channel.on('join', (e) => events.push(e));
  channel.on('update', (e) => events.push(e));
  channel.on('leave', (e) => events.push(e));
  channel.on('sync', (s) => syncs.push(s));
  return { events, syncs };
}

// 'polling,websocket' starts on polling and upgrades, as socket.io-client's default does.
describe.each([['websocket'], ['polling'], ['polling,websocket']] as const)('over %s', (transport) => {
  const transports = transport.split(',') as Array<'websocket' | 'polling'>;
  function client(): RealtimeClient {
    const c = new RealtimeClient(url, {
      transports,
      reconnectionDelayMs: 100,
      reconnectionDelayMaxMs: 500,
      ackTimeoutMs: 5000,
    });
    clients.push(c);
    return c;
  }

  it('two clients see each other join, update and leave', async () => {
    const roomId = room('pair');
    const a = client();
    const b = client();
    const alice = a.presence(roomId, { userId: 'alice', state: { name: 'Alice ✓' } });
    const bob = b.presence(roomId, { userId: 'bob', state: { name: 'Bob 🚀' } });
    const seenByAlice = record(alice);

    const aj = await alice.join();
    expect(aj.snapshot.members).toEqual(['alice']);
    // The transport in use: polling,websocket starts on polling and upgrades.
    const last = transports[transports.length - 1];
    await waitFor(`the ${last} transport`, () => a.socket.io?.engine?.transport?.name === last);
    const bj = await bob.join();
    expect(bj.snapshot.members.sort()).toEqual(['alice', 'bob']);
    expect(bob.members.user('alice')!.state).toEqual({ name: 'Alice ✓' });

    const join = await waitFor('alice to see bob join', () => seenByAlice.events.find((e) => e.type === 'join'));
    expect(join).toMatchObject({ userId: 'bob', connId: bob.connId, userJoined: true, state: { name: 'Bob 🚀' } });
    expect(alice.members.userIds().sort()).toEqual(['alice', 'bob']);
    expect(alice.count).toEqual({ connections: 2, members: 2 });

    const res = await bob.setState({ status: 'busy — 会議中' });
    expect(res).toMatchObject({ changed: true, queued: false });
    expect(res.epoch).toBeGreaterThan(bj.self.epoch);
    await waitFor('alice to see the update', () => alice.members.get(bob.connId!)?.state.status === 'busy — 会議中');
    expect(seenByAlice.events.find((e) => e.type === 'update')).toMatchObject({ userId: 'bob', epoch: res.epoch });

    const chat: unknown[] = [];
    b.on('chat:message', (m) => chat.push(m));
    const ack = await a.emit('chat:message', { text: 'héllo 👋' });
    expect(ack.ok).toBe(true);
    await waitFor('bob to get the chat message', () => chat.length > 0);
    expect(chat[0]).toMatchObject({ id: ack.id, roomId, userId: 'alice', connId: alice.connId, text: 'héllo 👋' });

    await expect(bob.leave()).resolves.toEqual({ removed: true });
    const leave = await waitFor('alice to see bob leave', () => seenByAlice.events.find((e) => e.type === 'leave'));
    expect(leave).toMatchObject({ userId: 'bob', reason: 'leave', userLeft: true, count: { connections: 1, members: 1 } });
    expect(alice.members.userIds()).toEqual(['alice']);
    // Every event arrived in seq order without a gap.
    const seqs = seenByAlice.events.map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
    expect(seenByAlice.syncs.map((s) => s.reason)).toEqual(['join']);
  });

  it('a dropped socket resumes its connection and the other client sees no leave or join', async () => {
    const roomId = room('resume');
    const a = client();
    const b = client();
    // Heartbeats every 500 ms, each allowed 5 s: on a busy machine a slow one is not a miss.
    const alice = a.presence(roomId, { userId: 'alice', heartbeatIntervalMs: 500, heartbeatTimeoutMs: 5000 });
    const bob = b.presence(roomId, { userId: 'bob' });
    await alice.join();
    await bob.join();
    const seenByAlice = record(alice);
    const seenByBob = record(bob);
    const connId = alice.connId;
    const epoch = alice.epoch;
    const reconnects: number[] = [];
    a.on('reconnect', (n) => reconnects.push(n));

    a.dropTransport(); // close the Engine.IO connection under the socket
    await waitFor('alice to resume', () => seenByAlice.syncs.find((s) => s.reason === 'resume'));
    expect(reconnects).toHaveLength(1);
    expect(alice.status).toBe('joined');
    expect(alice.connId).toBe(connId);
    expect(alice.epoch).toBeGreaterThan(epoch);

    // The resumed connection is live: heartbeats pass and updates reach bob.
    await alice.setState({ back: true });
    await waitFor('bob to see the update', () => bob.members.get(connId!)?.state.back === true);

    // Past the server's disconnect grace (2 s), the old socket's disconnect removed nothing.
    await sleep(3000);
    expect(seenByBob.events.map((e) => `${e.type}:${e.userId}`)).toEqual(['update:alice']);
    expect(bob.members.has(connId!)).toBe(true);
    expect(alice.missedHeartbeats).toBe(0);
    const res = await fetch(`${url}/v1/rooms/${encodeURIComponent(roomId)}/presence`);
    const snap = (await res.json()) as { connections: Array<{ connId: string }> };
    expect(snap.connections.map((c) => c.connId).sort()).toEqual([connId, bob.connId].sort());
  });

  it('a dropped socket recovers the chat messages and events it missed', async () => {
    const roomId = room('recover');
    const a = new RealtimeClient(url, {
      transports,
      reconnectionDelayMs: 1500,
      reconnectionDelayMaxMs: 1500,
      randomizationFactor: 0,
      ackTimeoutMs: 5000,
    });
    clients.push(a);
    const b = client();
    const alice = a.presence(roomId, { userId: 'alice' });
    const bob = b.presence(roomId, { userId: 'bob' });
    await alice.join();
    await bob.join();
    await waitFor('alice to see bob', () => alice.members.has(bob.connId!));
    const texts: string[] = [];
    a.on('chat:message', (m) => texts.push(m.text));
    const recoveries: unknown[] = [];
    alice.on('recover', (r) => recoveries.push(r));

    const before = alice.connId;
    a.dropTransport();
    await waitFor('alice to be away', () => alice.status === 'reconnecting');
    for (const text of ['one', 'two', 'three']) await b.emit('chat:message', { text });
    await bob.setState({ away: 'done' });
    await waitFor('alice to recover', () => recoveries.length > 0);
    // Back within the server's grace (2 s; the reconnection waits 1.5 s) she resumes her
    // connection and recovers the 3 messages and the update. A busy machine can make her
    // later: then her connection left, and she joins afresh and recovers the same 4 events
    // with her own leave and join around them.
    const replayed = alice.connId === before ? 4 : 6;
    expect(recoveries).toEqual([{ recovered: true, replayed }]);
    expect(texts).toEqual(['one', 'two', 'three']);
    expect(alice.members.get(bob.connId!)?.state).toEqual({ away: 'done' });
    expect(alice.recovery).toEqual({ recovered: true, replayed });

    await b.emit('chat:message', { text: 'live' });
    await waitFor('the live message', () => texts.length === 4);
    expect(texts).toEqual(['one', 'two', 'three', 'live']);
  });

  it('not_joined leads to a re-join with a fresh view', async () => {
    const roomId = room('rejoin');
    const a = client();
    const b = client();
    const alice = a.presence(roomId, { userId: 'alice', state: { v: 1 }, heartbeatIntervalMs: 300, heartbeatTimeoutMs: 5000 });
    const bob = b.presence(roomId, { userId: 'bob' });
    await alice.join();
    await bob.join();
    const seenByAlice = record(alice);
    const seenByBob = record(bob);
    const oldConn = alice.connId!;

    // Another socket takes alice's connection over with a resume: alice's socket is out of
    // the room and its next heartbeat answers not_joined.
    const intruder = io(url, { transports, forceNew: true, reconnection: false }) as unknown as RawSocket;
    rawSockets.push(intruder);
    const ack = await new Promise<any>((resolve, reject) => {
      intruder.on('connect_error', reject);
      intruder.on('connect', () =>
        intruder.emit(
          'presence:join',
          { roomId, userId: 'alice', resume: { connId: oldConn, epoch: alice.epoch } },
          resolve,
        ),
      );
    });
    expect(ack).toMatchObject({ ok: true, self: { connId: oldConn } });

    const sync = await waitFor('alice to re-join', () => seenByAlice.syncs.find((s) => s.reason === 'rejoin'));
    expect(alice.status).toBe('joined');
    expect(alice.connId).not.toBe(oldConn);
    expect(sync.self.connId).toBe(alice.connId);
    expect(alice.members.connections().map((c) => c.connId).sort()).toEqual([oldConn, alice.connId, bob.connId].sort());
    expect(alice.members.get(alice.connId!)!.state).toEqual({ v: 1 });
    // Bob sees the new connection join (the user was already there).
    const join = await waitFor('bob to see the new connection', () =>
      seenByBob.events.find((e) => e.type === 'join' && e.connId === alice.connId),
    );
    expect(join).toMatchObject({ userId: 'alice', userJoined: false });
    // The re-joined channel keeps heartbeating.
    await sleep(700);
    expect(alice.missedHeartbeats).toBe(0);
    expect(alice.status).toBe('joined');
  });

  it('a refused join rejects with the protocol code', async () => {
    const a = client();
    const channel = a.presence('bad{room}', { userId: 'alice' });
    await expect(channel.join()).rejects.toMatchObject({ code: 'invalid_payload', name: 'RealtimeError' });
    expect(channel.status).toBe('idle');
  });
});

/** jwt signs an HS256 token for `sub` that expires `expiresInS` seconds from now. */
function jwt(secret: string, sub: string, expiresInS: number): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + expiresInS })}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

describe('with JWT_SECRET: the token in the CONNECT auth object', () => {
  const secret = 'sdk-integration-secret';
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer(inject('serverBinary'), { ...SERVER_ENV, JWT_SECRET: secret });
  });
  afterAll(() => server?.stop());

  it('connects with a valid token, asks a token function again on reconnect, and refuses a bad one', async () => {
    let asked = 0;
    const c = new RealtimeClient(server.url, {
      token: () => {
        asked++;
        return jwt(secret, 'alice', 60);
      },
      transports: ['websocket'],
      reconnectionDelayMs: 100,
      reconnectionDelayMaxMs: 200,
    });
    clients.push(c);
    const alice = c.presence(room('jwt'), { userId: 'alice' });
    const seen = record(alice);
    await alice.join();
    expect(asked).toBe(1);
    c.dropTransport();
    await waitFor('the resume', () => seen.syncs.find((s) => s.reason === 'resume'));
    expect(asked).toBe(2);

    const bad = new RealtimeClient(server.url, { token: jwt('wrong-secret', 'bob', 60), transports: ['websocket'] });
    clients.push(bad);
    await expect(bad.connect()).rejects.toMatchObject({ code: 'unauthorized' });
    expect(bad.status).toBe('disconnected');
    const none = new RealtimeClient(server.url, { transports: ['polling'] });
    clients.push(none);
    await expect(none.connect()).rejects.toMatchObject({ code: 'unauthorized' });
  });
});

describe('two nodes on one Redis', () => {
  let redis: RunningRedis | undefined;
  const nodes: RunningServer[] = [];
  beforeAll(async () => {
    redis = await startRedis();
    for (let i = 0; i < 2; i++) nodes.push(await startServer(inject('serverBinary'), { ...SERVER_ENV, REDIS_URL: redis.url }));
  });
  afterAll(async () => {
    for (const n of nodes) await n.stop();
    redis?.stop();
  });

  it('a node whose Redis subscription dropped sends presence:resync, and the channel syncs', async () => {
    const roomId = room('resync');
    const a = new RealtimeClient(nodes[0]!.url, { transports: ['websocket'] });
    const b = new RealtimeClient(nodes[1]!.url, { transports: ['websocket'] });
    clients.push(a, b);
    const alice = a.presence(roomId, { userId: 'alice' });
    const bob = b.presence(roomId, { userId: 'bob' });
    await alice.join();
    await bob.join();
    await waitFor('alice to see bob', () => alice.members.has(bob.connId!));
    const seen = record(alice);
    const resyncs: unknown[] = [];
    a.on('presence:resync', (r) => resyncs.push(r));

    // Cut the nodes' subscriptions and change the room at once, until an update is
    // published while alice's node is deaf (its subscriber is back within a second).
    for (let i = 1; i <= 30 && resyncs.length === 0; i++) {
      await redis!.command('CLIENT', 'KILL', 'TYPE', 'pubsub');
      await bob.setState({ n: i });
      await waitFor(`alice to catch up with n=${i}`, () => alice.members.get(bob.connId!)?.state.n === i);
    }
    expect(resyncs[0]).toEqual({ roomId, seq: expect.any(Number) });
    await waitFor('the resync sync', () => seen.syncs.find((s) => s.reason === 'resync'));
    const res = await fetch(`${nodes[0]!.url}/v1/rooms/${encodeURIComponent(roomId)}/presence`);
    const snap = (await res.json()) as { seq: number; connections: Array<{ connId: string; state: object }> };
    expect(alice.seq).toBe(snap.seq);
    expect(alice.members.connections().map((c) => [c.connId, c.state])).toEqual(snap.connections.map((c) => [c.connId, c.state]));
  });
});
