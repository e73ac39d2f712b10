import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RealtimeError, type RealtimeClient, type TopicMessage, type TopicSubscription } from '../../src/index.js';
import { flush, setup, tick, useFakeTimers, type FakeSocket } from './fake-socket.js';

beforeEach(() => useFakeTimers());
afterEach(() => vi.useRealTimers());

async function connected(options: Parameters<typeof setup>[0] = {}): Promise<{ client: RealtimeClient; socket: FakeSocket }> {
  const { client, socket } = setup(options);
  const c = client.connect();
  socket.connect();
  await c;
  return { client, socket };
}

function message(topic: string, data: unknown, ts = 1_700_000_000_000): TopicMessage {
  return { topic, data, ts };
}

const forbidden = { ok: false, error: { code: 'forbidden', message: 'the token does not grant this topic' } };
const rateLimited = { ok: false, error: { code: 'rate_limited', message: 'slow down' } };

describe('topics.subscribe', () => {
  it('subscribes the socket, resolves on the acknowledgement and hands each message to the handler', async () => {
    const { client, socket } = await connected();
    const got: Array<[unknown, TopicMessage]> = [];
    const p = client.topics.subscribe<{ home: number }>('scores', (data, m) => got.push([data, m]));
    expect(socket.last('topic:subscribe').payload).toEqual({ topic: 'scores' });
    expect(client.topics.has('scores')).toBe(false);
    socket.reply('topic:subscribe', { ok: true, topic: 'scores' });
    const sub = await p;
    expect(sub.topic).toBe('scores');
    expect(sub.active).toBe(true);
    expect(client.topics.has('scores')).toBe(true);
    expect(client.topics.list()).toEqual(['scores']);

    socket.fire('topic:message', message('scores', { home: 2 }, 5));
    socket.fire('topic:message', message('other', 'not mine'));
    expect(got).toEqual([[{ home: 2 }, { topic: 'scores', data: { home: 2 }, ts: 5 }]]);
  });

  it('waits for the connection, opening it when nobody has', async () => {
    const { client, socket } = setup();
    const p = client.topics.subscribe('news', () => undefined);
    expect(socket.opened).toBe(1);
    expect(socket.all('topic:subscribe')).toHaveLength(0);
    socket.connect();
    expect(socket.all('topic:subscribe')).toHaveLength(1);
    socket.reply('topic:subscribe', { ok: true, topic: 'news' });
    await expect(p).resolves.toMatchObject({ topic: 'news', active: true });
  });

  it('shares one server subscription between the handlers of a topic', async () => {
    const { client, socket } = await connected();
    const a = vi.fn();
    const b = vi.fn();
    const c = vi.fn();
    const pa = client.topics.subscribe('t', a);
    const pb = client.topics.subscribe('t', b); // while the first is in flight
    socket.reply('topic:subscribe', { ok: true, topic: 't' });
    await Promise.all([pa, pb]);
    const subC = await client.topics.subscribe('t', c); // already subscribed: at once
    expect(socket.all('topic:subscribe')).toHaveLength(1);

    socket.fire('topic:message', message('t', 1));
    expect([a.mock.calls.length, b.mock.calls.length, c.mock.calls.length]).toEqual([1, 1, 1]);
    expect(c).toHaveBeenCalledWith(1, { topic: 't', data: 1, ts: 1_700_000_000_000 });

    // Removing one handler keeps the others and sends nothing.
    await subC.unsubscribe();
    expect(subC.active).toBe(false);
    expect(socket.all('topic:unsubscribe')).toHaveLength(0);
    socket.fire('topic:message', message('t', 2));
    expect([a.mock.calls.length, b.mock.calls.length, c.mock.calls.length]).toEqual([2, 2, 1]);
  });

  it('a handler that throws does not keep the others from their message', async () => {
    const { client, socket } = await connected();
    const after = vi.fn();
    const p1 = client.topics.subscribe('t', () => {
      throw new Error('app bug');
    });
    const p2 = client.topics.subscribe('t', after);
    socket.reply('topic:subscribe', { ok: true, topic: 't' });
    await Promise.all([p1, p2]);
    // The handler's error is rethrown from a timer of its own, so that it still surfaces.
    const thrown: unknown[] = [];
    const spy = vi.spyOn(globalThis, 'setTimeout').mockImplementation(((fn: () => void) => {
      try {
        fn();
      } catch (err) {
        thrown.push(err);
      }
      return 0 as unknown as ReturnType<typeof setTimeout>;
    }) as typeof setTimeout);
    socket.fire('topic:message', message('t', 'x'));
    spy.mockRestore();
    expect(after).toHaveBeenCalledTimes(1);
    expect(thrown).toEqual([new Error('app bug')]);
  });

  it('refuses a topic that breaks the id rules before sending anything', async () => {
    const { client, socket } = await connected();
    const bad = ['', 'x'.repeat(101), 'é'.repeat(51), 'a{b', 'a}b', 'line\nbreak', 'del\u007f', 'c1\u0085', 'lone\ud800', '\udc00x'];
    for (const topic of bad) {
      await expect(client.topics.subscribe(topic, () => undefined), JSON.stringify(topic)).rejects.toMatchObject({
        code: 'invalid_payload',
        event: 'topic:subscribe',
      });
    }
    await expect(client.topics.subscribe(42 as unknown as string, () => undefined)).rejects.toBeInstanceOf(RealtimeError);
    await expect(client.topics.subscribe('ok', 'nope' as never)).rejects.toBeInstanceOf(TypeError);
    expect(socket.all('topic:subscribe')).toHaveLength(0);
    expect(client.topics.list()).toEqual([]);

    // The limits themselves are fine: 100 bytes of UTF-8, emoji, spaces, colons.
    for (const topic of ['x'.repeat(100), 'é'.repeat(50), '🚀'.repeat(25), 'scores: home team', 'a/b.c']) {
      const p = client.topics.subscribe(topic, () => undefined);
      socket.reply('topic:subscribe', { ok: true, topic });
      await expect(p).resolves.toMatchObject({ topic });
    }
  });

  it('rejects with the server code and leaves no handler behind', async () => {
    const { client, socket } = await connected();
    const handler = vi.fn();
    const p = client.topics.subscribe('secret', handler);
    socket.reply('topic:subscribe', forbidden);
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RealtimeError);
    expect(err).toMatchObject({ code: 'forbidden', event: 'topic:subscribe', message: 'the token does not grant this topic' });
    expect(client.topics.list()).toEqual([]);
    socket.fire('topic:message', message('secret', 1));
    expect(handler).not.toHaveBeenCalled();

    // A later call tries again.
    const again = client.topics.subscribe('secret', handler);
    expect(socket.all('topic:subscribe')).toHaveLength(2);
    socket.reply('topic:subscribe', { ok: true, topic: 'secret' });
    await again;
  });

  it('on a timeout rejects, then unsubscribes in case the server did subscribe', async () => {
    const { client, socket } = await connected({ ackTimeoutMs: 1000 });
    const p = client.topics.subscribe('slow', () => undefined).catch((e: unknown) => e);
    await tick(1000);
    expect(await p).toMatchObject({ code: 'timeout' });
    expect(socket.last('topic:unsubscribe').payload).toEqual({ topic: 'slow' });
    socket.reply('topic:unsubscribe', { ok: true, removed: true });
    await flush();
    expect(client.topics.list()).toEqual([]);
  });

  it('uses the timeoutMs option', async () => {
    const { client } = await connected({ ackTimeoutMs: 10_000 });
    const p = client.topics.subscribe('slow', () => undefined, { timeoutMs: 200 }).catch((e: unknown) => e);
    await tick(200);
    expect(await p).toMatchObject({ code: 'timeout' });
  });
});

describe('TopicSubscription.unsubscribe', () => {
  it('stops the handler at once and unsubscribes the socket with the last handler', async () => {
    const { client, socket } = await connected();
    const handler = vi.fn();
    const p = client.topics.subscribe('t', handler);
    socket.reply('topic:subscribe', { ok: true, topic: 't' });
    const sub = await p;
    let done = false;
    const u = sub.unsubscribe().then(() => {
      done = true;
    });
    expect(sub.active).toBe(false);
    expect(socket.last('topic:unsubscribe').payload).toEqual({ topic: 't' });
    socket.fire('topic:message', message('t', 'in flight')); // not delivered any more
    await flush();
    expect(done).toBe(false);
    socket.reply('topic:unsubscribe', { ok: true, removed: true });
    await u;
    expect(handler).not.toHaveBeenCalled();
    expect(client.topics.has('t')).toBe(false);
    expect(client.topics.list()).toEqual([]);
    await sub.unsubscribe(); // twice: nothing
    expect(socket.all('topic:unsubscribe')).toHaveLength(1);
  });

  it('never rejects: a failed unsubscribe is retried in the background', async () => {
    const { client, socket } = await connected();
    const p = client.topics.subscribe('t', () => undefined);
    socket.reply('topic:subscribe', { ok: true, topic: 't' });
    const sub = await p;
    const u = sub.unsubscribe();
    socket.reply('topic:unsubscribe', rateLimited);
    await expect(u).resolves.toBeUndefined();
    await tick(1000);
    expect(socket.all('topic:unsubscribe')).toHaveLength(2);
    socket.reply('topic:unsubscribe', { ok: true, removed: true });
    await flush();
    expect(client.topics.list()).toEqual([]);
  });

  it('resolves at once while disconnected (a new socket holds no subscription)', async () => {
    const { client, socket } = await connected();
    const p = client.topics.subscribe('t', () => undefined);
    socket.reply('topic:subscribe', { ok: true, topic: 't' });
    const sub = await p;
    socket.drop();
    await sub.unsubscribe();
    socket.connect();
    await flush();
    expect(socket.all('topic:subscribe')).toHaveLength(1);
    expect(socket.all('topic:unsubscribe')).toHaveLength(0);
  });

  it('a subscribe after an unsubscribe in flight waits for its answer, then subscribes again', async () => {
    const { client, socket } = await connected();
    const p = client.topics.subscribe('t', () => undefined);
    socket.reply('topic:subscribe', { ok: true, topic: 't' });
    const first = await p;
    void first.unsubscribe();
    const handler = vi.fn();
    const again = client.topics.subscribe('t', handler);
    expect(socket.all('topic:subscribe')).toHaveLength(1);
    socket.reply('topic:unsubscribe', { ok: true, removed: true });
    await flush();
    expect(socket.all('topic:subscribe')).toHaveLength(2);
    socket.reply('topic:subscribe', { ok: true, topic: 't' });
    await again;
    expect(client.topics.has('t')).toBe(true);
    socket.fire('topic:message', message('t', 1));
    expect(handler).toHaveBeenCalledTimes(1);
  });

  it('an unsubscribe while the subscribe is in flight unsubscribes once it is answered', async () => {
    const { client, socket } = await connected();
    const a = client.topics.subscribe('t', () => undefined);
    const b = client.topics.subscribe('t', () => undefined);
    socket.reply('topic:subscribe', { ok: true, topic: 't' });
    const [sa, sb] = await Promise.all([a, b]);
    await sa.unsubscribe();
    const u = sb.unsubscribe();
    expect(socket.all('topic:unsubscribe')).toHaveLength(1);
    socket.reply('topic:unsubscribe', { ok: true, removed: true });
    await u;
  });
});

describe('topics after a reconnect', () => {
  it('subscribes every topic that has handlers again on the new socket', async () => {
    const { client, socket } = await connected();
    const events: Array<[string, boolean]> = [];
    client.topics.on('subscribed', (topic, resubscribed) => events.push([topic, resubscribed]));
    const a = vi.fn();
    const subs: TopicSubscription[] = [];
    for (const topic of ['a', 'b', 'c']) {
      const p = client.topics.subscribe(topic, topic === 'a' ? a : () => undefined);
      socket.reply('topic:subscribe', { ok: true, topic });
      subs.push(await p);
    }
    const u = subs[2]!.unsubscribe();
    socket.reply('topic:unsubscribe', { ok: true, removed: true });
    await u;
    expect(events).toEqual([
      ['a', false],
      ['b', false],
      ['c', false],
    ]);

    socket.drop();
    expect(client.topics.has('a')).toBe(false);
    socket.connect();
    const again = socket.all('topic:subscribe').slice(3);
    expect(again.map((s) => s.payload)).toEqual([{ topic: 'a' }, { topic: 'b' }]);
    socket.reply('topic:subscribe', { ok: true, topic: 'a' });
    socket.reply('topic:subscribe', { ok: true, topic: 'b' });
    await flush();
    expect(events.slice(3)).toEqual([
      ['a', true],
      ['b', true],
    ]);
    expect(client.topics.has('a')).toBe(true);
    socket.fire('topic:message', message('a', 'after'));
    expect(a).toHaveBeenCalledWith('after', expect.objectContaining({ topic: 'a' }));
    expect(subs[0]!.active).toBe(true);
  });

  it('a subscribe in flight when the socket drops is sent again and resolves then', async () => {
    const { client, socket } = await connected();
    const p = client.topics.subscribe('t', () => undefined);
    let settled = false;
    void p.then(() => (settled = true));
    socket.drop();
    await flush();
    expect(settled).toBe(false);
    socket.connect();
    expect(socket.all('topic:subscribe')).toHaveLength(2);
    socket.reply('topic:subscribe', { ok: true, topic: 't' }); // the first, answered too late: ignored
    socket.reply('topic:subscribe', { ok: true, topic: 't' });
    await expect(p).resolves.toMatchObject({ topic: 't', active: true });
  });

  it('reports a refused resubscribe with the error event and ends the subscription', async () => {
    const { client, socket } = await connected();
    const handler = vi.fn();
    const p = client.topics.subscribe('t', handler);
    socket.reply('topic:subscribe', { ok: true, topic: 't' });
    const sub = await p;
    const errors: Array<[RealtimeError, string]> = [];
    client.topics.on('error', (err, topic) => errors.push([err, topic]));

    socket.drop();
    socket.connect();
    socket.reply('topic:subscribe', forbidden);
    await flush();
    expect(errors).toHaveLength(1);
    expect(errors[0]![0]).toMatchObject({ code: 'forbidden', event: 'topic:subscribe' });
    expect(errors[0]![1]).toBe('t');
    expect(sub.active).toBe(false);
    expect(client.topics.list()).toEqual([]);
    socket.fire('topic:message', message('t', 1));
    expect(handler).not.toHaveBeenCalled();
    await tick(60_000);
    expect(socket.all('topic:subscribe')).toHaveLength(2); // not retried
  });

  it('retries a resubscribe that failed for a passing reason, with a backoff', async () => {
    const { client, socket } = await connected();
    const p = client.topics.subscribe('t', () => undefined);
    socket.reply('topic:subscribe', { ok: true, topic: 't' });
    const sub = await p;
    const errors: string[] = [];
    client.topics.on('error', (err) => errors.push(err.code));

    socket.drop();
    socket.connect();
    socket.reply('topic:subscribe', rateLimited);
    await flush();
    expect(errors).toEqual(['rate_limited']);
    await tick(998); // tick adds 1 ms
    expect(socket.all('topic:subscribe')).toHaveLength(2);
    await tick(1);
    expect(socket.all('topic:subscribe')).toHaveLength(3);
    socket.reply('topic:subscribe', { ok: false, error: { code: 'unavailable', message: 'redis' } });
    await tick(1998);
    expect(socket.all('topic:subscribe')).toHaveLength(3);
    await tick(1);
    expect(socket.all('topic:subscribe')).toHaveLength(4);
    socket.reply('topic:subscribe', { ok: true, topic: 't' });
    await flush();
    expect(errors).toEqual(['rate_limited', 'unavailable']);
    expect(sub.active).toBe(true);
    expect(client.topics.has('t')).toBe(true);
  });

  it('a new subscribe waiting on a failed resubscribe is rejected, the old handlers kept', async () => {
    const { client, socket } = await connected();
    const p = client.topics.subscribe('t', () => undefined);
    socket.reply('topic:subscribe', { ok: true, topic: 't' });
    const old = await p;
    client.topics.on('error', () => undefined);
    socket.drop();
    const late = client.topics.subscribe('t', () => undefined);
    socket.connect();
    expect(socket.all('topic:subscribe')).toHaveLength(2);
    socket.reply('topic:subscribe', rateLimited);
    await expect(late).rejects.toMatchObject({ code: 'rate_limited' });
    expect(old.active).toBe(true);
    expect(client.topics.list()).toEqual(['t']);
  });

  it('paces a burst of operations below the server\'s rate limit', async () => {
    const { client, socket } = await connected();
    const topics = Array.from({ length: 30 }, (_, i) => `t${i}`);
    const all = Promise.all(topics.map((t) => client.topics.subscribe(t, () => undefined)));
    expect(socket.all('topic:subscribe')).toHaveLength(20);
    for (let i = 0; i < 20; i++) socket.reply('topic:subscribe', { ok: true, topic: topics[i] });
    await tick(500);
    const sent = socket.all('topic:subscribe').length;
    expect(sent).toBeGreaterThanOrEqual(24);
    expect(sent).toBeLessThanOrEqual(26);
    await tick(1000);
    expect(socket.all('topic:subscribe')).toHaveLength(30);
    for (let i = 20; i < 30; i++) socket.reply('topic:subscribe', { ok: true, topic: topics[i] });
    await expect(all).resolves.toHaveLength(30);
  });
});

describe('topics when the client stops', () => {
  it('client.disconnect() ends every subscription and rejects the calls still waiting with closed', async () => {
    const { client, socket } = await connected();
    const p = client.topics.subscribe('a', () => undefined);
    socket.reply('topic:subscribe', { ok: true, topic: 'a' });
    const sub = await p;
    const waiting = client.topics.subscribe('b', () => undefined);
    client.disconnect();
    await expect(waiting).rejects.toMatchObject({ code: 'closed' });
    expect(sub.active).toBe(false);
    expect(client.topics.list()).toEqual([]);
    await sub.unsubscribe();
  });

  it('a subscribe waiting for a refused connection rejects with unauthorized', async () => {
    const { client, socket } = setup({ token: 'bad' });
    const p = client.topics.subscribe('t', () => undefined);
    socket.refuse();
    await expect(p).rejects.toMatchObject({ code: 'unauthorized' });
    expect(client.topics.list()).toEqual([]);
  });

  it('a subscribe waiting when reconnection gives up rejects with connect_failed', async () => {
    const { client, socket } = setup();
    const p = client.topics.subscribe('t', () => undefined);
    socket.io.fire('reconnect_failed');
    await expect(p).rejects.toMatchObject({ code: 'connect_failed' });
  });
});
