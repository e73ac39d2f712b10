// Topics and backend events (PROTOCOL.md revision 3) with the SDK in Node against the real
// Go server: two nodes on one redis-server with an API_TOKEN, and a node with JWT_SECRET.
import { createHmac } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { RealtimeClient, type RealtimeError, type TopicMessage, type TopicSubscription } from '../../src/index.js';
import { SERVER_ENV, startRedis, startServer, type RunningRedis, type RunningServer } from '../support/server.js';
import { unique, waitFor, sleep } from '../support/wait.js';

const API_TOKEN = 'sdk-integration-api-token';
const clients: RealtimeClient[] = [];

afterEach(() => {
  for (const c of clients.splice(0)) c.disconnect();
});

/** post sends a backend call to the HTTP API and returns its status and JSON body. */
async function post(base: string, path: string, body: unknown, token: string | null = API_TOKEN) {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (token !== null) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(`${base}${path}`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, body: json };
}

describe('two nodes on one Redis, with an API token', () => {
  let redis: RunningRedis | undefined;
  const nodes: RunningServer[] = [];
  beforeAll(async () => {
    redis = await startRedis();
    for (let i = 0; i < 2; i++) {
      nodes.push(await startServer(inject('serverBinary'), { ...SERVER_ENV, REDIS_URL: redis.url, API_TOKEN }));
    }
  });
  afterAll(async () => {
    for (const n of nodes) await n.stop();
    redis?.stop();
  });

  function client(node: number, transports: Array<'websocket' | 'polling'> = ['websocket']): RealtimeClient {
    const c = new RealtimeClient(nodes[node]!.url, {
      transports,
      reconnectionDelayMs: 100,
      reconnectionDelayMaxMs: 300,
      ackTimeoutMs: 5000,
    });
    clients.push(c);
    return c;
  }

  it('a published message reaches the subscribers on both nodes, every handler once', async () => {
    const topic = unique('scores ⚽');
    const a = client(0);
    const b = client(1, ['polling']);
    const gotA: TopicMessage[] = [];
    const gotA2: unknown[] = [];
    const gotB: TopicMessage[] = [];
    await a.topics.subscribe(topic, (_data, m) => gotA.push(m));
    await a.topics.subscribe(topic, (data) => gotA2.push(data)); // shares a's subscription
    await b.topics.subscribe(topic, (_data, m) => gotB.push(m));
    expect(a.topics.has(topic)).toBe(true);

    const data = { home: 2, away: 1, note: 'héllo 👋', list: [1, null, true] };
    const before = Date.now();
    const res = await post(nodes[0]!.url, `/v1/topics/${encodeURIComponent(topic)}/publish`, { data });
    expect(res).toEqual({ status: 200, body: { ok: true } });
    await waitFor('both clients to get the message', () => gotA.length > 0 && gotB.length > 0);
    expect(gotA[0]).toEqual({ topic, data, ts: expect.any(Number) });
    expect(gotB[0]).toEqual(gotA[0]);
    expect(gotA[0]!.ts).toBeGreaterThanOrEqual(before - 5000);
    expect(gotA2).toEqual([data]);

    // Scalars are data too.
    await post(nodes[1]!.url, `/v1/topics/${encodeURIComponent(topic)}/publish`, { data: 'plain' });
    await waitFor('the second message', () => gotA.length > 1 && gotB.length > 1);
    expect(gotB[1]!.data).toBe('plain');
    await sleep(200);
    expect([gotA.length, gotA2.length, gotB.length]).toEqual([2, 2, 2]);
  });

  it('the publish endpoint refuses a missing or wrong token, a bad topic or body, and a body over the limit', async () => {
    const base = nodes[0]!.url;
    const path = `/v1/topics/${encodeURIComponent(unique('t'))}/publish`;
    expect((await post(base, path, { data: 1 }, null)).status).toBe(401);
    expect((await post(base, path, { data: 1 }, 'wrong')).status).toBe(401);
    expect((await post(base, `/v1/topics/${encodeURIComponent('a{b}')}/publish`, { data: 1 })).status).toBe(400);
    expect((await post(base, `/v1/topics/${'x'.repeat(101)}/publish`, { data: 1 })).status).toBe(400);
    expect((await post(base, path, '[1,2]')).status).toBe(400);
    expect((await post(base, path, { data: 'x'.repeat(70_000) })).status).toBe(413);
  });

  it('unsubscribe stops the messages; a refused topic rejects with invalid_payload', async () => {
    const topic = unique('news');
    const a = client(0);
    const got: unknown[] = [];
    const sub = await a.topics.subscribe(topic, (d) => got.push(d));
    await sub.unsubscribe();
    expect(a.topics.has(topic)).toBe(false);
    await post(nodes[0]!.url, `/v1/topics/${encodeURIComponent(topic)}/publish`, { data: 1 });
    await sleep(300);
    expect(got).toEqual([]);
    // The server's own answer (the SDK checks the same rules before sending, so send raw).
    await expect(a.emit('topic:subscribe', { topic: 'bad{topic}' })).rejects.toMatchObject({ code: 'invalid_payload' });
    await expect(a.emit('topic:unsubscribe', { topic })).resolves.toEqual({ ok: true, removed: false });
  });

  it('after a dropped connection the client subscribes again by itself and gets the next messages', async () => {
    const topic = unique('resub');
    const a = client(0);
    const got: unknown[] = [];
    const resubscribed: string[] = [];
    const errors: RealtimeError[] = [];
    a.topics.on('subscribed', (t, again) => again && resubscribed.push(t));
    a.topics.on('error', (e) => errors.push(e));
    await a.topics.subscribe(topic, (d) => got.push(d));
    const firstId = a.id;
    expect(firstId).toEqual(expect.any(String));

    a.dropTransport();
    await waitFor('the resubscribe', () => resubscribed.includes(topic));
    expect(a.id).not.toBe(firstId);
    await post(nodes[1]!.url, `/v1/topics/${encodeURIComponent(topic)}/publish`, { data: 'after the drop' });
    await waitFor('the message on the new socket', () => got.length > 0);
    expect(got).toEqual(['after the drop']);
    expect(errors).toEqual([]);
  });

  it('backend events to a user, a socket and a room reach client.on, from either node', async () => {
    const roomId = unique('room');
    const userId = unique('alice');
    const a = client(0);
    const b = client(1, ['polling', 'websocket']);
    // Without JWT the presence join says who the socket is.
    await a.presence(roomId, { userId }).join();
    await b.presence(roomId, { userId: unique('bob') }).join();
    interface Shipped {
      orderId: string;
      items: number;
    }
    const onA: Array<[string, unknown]> = [];
    const onB: Array<[string, unknown]> = [];
    for (const name of ['order:shipped', 'notice', 'status']) {
      a.on<Shipped>(name, (d) => onA.push([name, d]));
      b.onServer(name, (d) => onB.push([name, d]));
    }
    const statusFromBackend: unknown[] = [];
    a.onServer('status', (d) => statusFromBackend.push(d));

    const toUser = await post(nodes[1]!.url, `/v1/users/${encodeURIComponent(userId)}/emit`, {
      event: 'order:shipped',
      data: { orderId: 'o-1', items: 3 },
    });
    expect(toUser).toEqual({ status: 200, body: { ok: true } });
    await waitFor('the user event', () => onA.length > 0);
    expect(onA[0]).toEqual(['order:shipped', { orderId: 'o-1', items: 3 }]);

    const toSocket = await post(nodes[0]!.url, `/v1/sockets/${encodeURIComponent(b.id!)}/emit`, { event: 'notice', data: 'just you' });
    expect(toSocket.status).toBe(200);
    await waitFor('the socket event', () => onB.length > 0);
    expect(onB[0]).toEqual(['notice', 'just you']);

    await post(nodes[0]!.url, `/v1/rooms/${encodeURIComponent(roomId)}/emit`, { event: 'status', data: { phase: 'closing' } });
    await waitFor('the room event on both', () => statusFromBackend.length > 0 && onB.length > 1);
    expect(statusFromBackend).toEqual([{ phase: 'closing' }]);
    expect(onB[1]).toEqual(['status', { phase: 'closing' }]);
    await sleep(200);
    // on('status') is the connection status; the backend's "status" went to onServer only.
    expect(onA.map(([n]) => n)).toEqual(['order:shipped']);

    // The modules' names and Socket.IO's are not the backends'.
    for (const event of ['topic:message', 'presence:event', 'chat:message', 'connect', 'disconnect']) {
      expect((await post(nodes[0]!.url, `/v1/users/${encodeURIComponent(userId)}/emit`, { event, data: 1 })).status).toBe(400);
    }
    expect((await post(nodes[0]!.url, `/v1/users/${encodeURIComponent(userId)}/emit`, { event: 'x' }, null)).status).toBe(401);
  });
});

/** jwt signs an HS256 token for `sub`, with a `rooms` claim when given. */
function jwt(secret: string, sub: string, rooms?: string[]): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const claims: Record<string, unknown> = { sub, exp: Math.floor(Date.now() / 1000) + 300 };
  if (rooms) claims.rooms = rooms;
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

describe('with JWT_SECRET: the rooms claim grants topics', () => {
  const secret = 'sdk-integration-topics-secret';
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer(inject('serverBinary'), { ...SERVER_ENV, JWT_SECRET: secret, API_TOKEN });
  });
  afterAll(() => server?.stop());

  it('a topic outside the claim is forbidden, one inside it works, and the user of a backend emit is the token\'s sub', async () => {
    const userId = unique('carol');
    const allowed = unique('allowed');
    const c = new RealtimeClient(server.url, { token: jwt(secret, userId, [allowed]), transports: ['websocket'] });
    clients.push(c);
    await expect(c.topics.subscribe(unique('other'), () => undefined)).rejects.toMatchObject({
      code: 'forbidden',
      event: 'topic:subscribe',
    });
    expect(c.topics.list()).toEqual([]);
    const got: unknown[] = [];
    await c.topics.subscribe(allowed, (d) => got.push(d));
    const pub = await post(server.url, `/v1/topics/${encodeURIComponent(allowed)}/publish`, { data: { n: 1 } });
    expect(pub.status).toBe(200);
    await waitFor('the message', () => got.length > 0);
    expect(got).toEqual([{ n: 1 }]);

    // No presence join: the token says who the socket is.
    const events: unknown[] = [];
    c.on('hello', (d) => events.push(d));
    await post(server.url, `/v1/users/${encodeURIComponent(userId)}/emit`, { event: 'hello', data: 'from the backend' });
    await waitFor('the user event', () => events.length > 0);
    expect(events).toEqual(['from the backend']);
  });

  it('without a rooms claim any topic may be subscribed, up to 64 per socket', async () => {
    const c = new RealtimeClient(server.url, { token: jwt(secret, unique('dave')), transports: ['websocket'] });
    clients.push(c);
    const subs: TopicSubscription[] = await Promise.all(
      Array.from({ length: 64 }, (_, i) => c.topics.subscribe(unique(`t${i}`), () => undefined)),
    );
    expect(subs).toHaveLength(64);
    await expect(c.topics.subscribe(unique('one-too-many'), () => undefined)).rejects.toMatchObject({ code: 'forbidden' });
    await subs[0]!.unsubscribe();
    await expect(c.topics.subscribe(unique('room-again'), () => undefined)).resolves.toMatchObject({ active: true });
  });
});
