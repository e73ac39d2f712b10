import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AckTimeoutError, RealtimeError } from '../../src/index.js';
import { flush, setup, useFakeTimers } from './fake-socket.js';

beforeEach(() => useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('RealtimeClient socket options', () => {
  it('passes the transports and reconnection settings to socket.io, the token in the CONNECT auth', () => {
    const { socket } = setup({
      token: 'jwt-1',
      transports: ['websocket'],
      reconnectionAttempts: 7,
      reconnectionDelayMs: 250,
      reconnectionDelayMaxMs: 2000,
      query: { app: 'demo' },
    });
    expect(socket.options).toMatchObject({
      path: '/socket.io',
      query: { app: 'demo' },
      transports: ['websocket'],
      forceNew: true,
      autoConnect: false,
      reconnection: true,
      reconnectionAttempts: 7,
      reconnectionDelay: 250,
      reconnectionDelayMax: 2000,
    });
    expect(socket.options.query).not.toHaveProperty('token');
    expect(socket.auth()).toEqual({ token: 'jwt-1' });
  });

  it('asks a token function again before each connection attempt', () => {
    let n = 0;
    const { socket } = setup({ token: () => `jwt-${++n}` });
    expect(n).toBe(0); // not before the first attempt
    expect(socket.auth()).toEqual({ token: 'jwt-1' });
    expect(socket.auth()).toEqual({ token: 'jwt-2' });
    expect(socket.options.query).not.toHaveProperty('token');
  });

  it('sends no auth object without a token, and an empty one when the function has none', () => {
    expect(setup().socket.options.auth).toBeUndefined();
    expect(setup({ token: () => undefined }).socket.auth()).toEqual({});
  });

  it('connects from the constructor unless autoConnect is false', () => {
    expect(setup({ autoConnect: true }).socket.opened).toBe(1);
    expect(setup().socket.opened).toBe(0);
  });
});

describe('RealtimeClient connection state', () => {
  it('emits connect, disconnect, reconnecting and reconnect with the status', async () => {
    const { client, socket } = setup();
    const seen: string[] = [];
    client.on('connect', () => seen.push('connect'));
    client.on('disconnect', (reason) => seen.push(`disconnect:${reason}`));
    client.on('reconnecting', (n) => seen.push(`reconnecting:${n}`));
    client.on('reconnect', (n) => seen.push(`reconnect:${n}`));
    client.on('status', (s) => seen.push(`status:${s}`));

    const connected = client.connect();
    expect(client.status).toBe('connecting');
    socket.connect();
    await connected;
    expect(client.status).toBe('connected');

    socket.drop('transport close');
    expect(client.status).toBe('reconnecting');
    socket.io.fire('reconnect_attempt', 1);
    socket.io.fire('reconnect_attempt', 2);
    socket.connect();
    expect(seen).toEqual([
      'status:connecting',
      'status:connected',
      'connect',
      'status:reconnecting',
      'disconnect:transport close',
      'reconnecting:1',
      'reconnecting:2',
      'status:connected',
      'connect',
      'reconnect:2',
    ]);
  });

  it('disconnect() closes for good and is not followed by reconnect', async () => {
    const { client, socket } = setup();
    const p = client.connect();
    socket.connect();
    await p;
    const reconnects = vi.fn();
    client.on('reconnect', reconnects);
    client.disconnect();
    expect(client.status).toBe('disconnected');
    expect(socket.connected).toBe(false);
    socket.connect(); // a later connect() is a fresh connection, not a reconnect
    expect(reconnects).not.toHaveBeenCalled();
  });

  it('connect() rejects when the server refuses the socket (CONNECT_ERROR)', async () => {
    const { client, socket } = setup({ token: 'expired' });
    const errors: RealtimeError[] = [];
    client.on('connect_error', (e) => errors.push(e));
    const p = client.connect();
    socket.refuse('unauthorized');
    await expect(p).rejects.toMatchObject({ code: 'unauthorized' });
    expect(client.status).toBe('disconnected');
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toContain('unauthorized');
  });

  it('a server disconnect is final: no reconnecting status', async () => {
    const { client, socket } = setup();
    const p = client.connect();
    socket.connect();
    await p;
    socket.drop('io server disconnect');
    expect(client.status).toBe('disconnected');
  });

  it('connect() rejects when reconnection gives up', async () => {
    const { client, socket } = setup();
    const errors: RealtimeError[] = [];
    client.on('connect_error', (e) => errors.push(e));
    const p = client.connect();
    socket.fire('connect_error', new Error('xhr poll error'));
    expect(client.status).toBe('connecting'); // socket.io-client tries again
    socket.io.fire('reconnect_failed');
    await expect(p).rejects.toMatchObject({ code: 'connect_failed' });
    expect(client.status).toBe('disconnected');
    expect(errors[0]).toBeInstanceOf(RealtimeError);
    expect(errors[0]!.message).toContain('xhr poll error');
  });
});

describe('RealtimeClient.on/off for server events', () => {
  it('delivers any server event and stops after off', () => {
    const { client, socket } = setup();
    const got: unknown[] = [];
    const listener = (m: unknown) => got.push(m);
    client.on('chat:message', listener);
    client.on('custom:thing', listener);
    socket.fire('chat:message', { id: '1', text: 'hi' });
    socket.fire('custom:thing', 42);
    client.off('chat:message', listener);
    socket.fire('chat:message', { id: '2', text: 'ignored' });
    expect(got).toEqual([{ id: '1', text: 'hi' }, 42]);
  });

  it('on() returns an unsubscribe function', () => {
    const { client, socket } = setup();
    const fn = vi.fn();
    const off = client.on('chat:message', fn);
    off();
    socket.fire('chat:message', {});
    expect(fn).not.toHaveBeenCalled();
  });

  it('delivers backend events of any name, typed, with their one data argument', () => {
    const { client, socket } = setup();
    interface Shipped {
      orderId: string;
    }
    const orders: Shipped[] = [];
    const names: unknown[] = [];
    client.on<Shipped>('order:shipped', (o) => orders.push(o));
    client.on('notification', (n) => names.push(n));
    client.on('déjà vu 🚀', (n) => names.push(n));
    client.once('once-only', (n) => names.push(n));
    socket.fire('order:shipped', { orderId: 'o-1' });
    socket.fire('notification', null);
    socket.fire('notification', [1, 'two']);
    socket.fire('déjà vu 🚀', 'ok');
    socket.fire('once-only', 1);
    socket.fire('once-only', 2);
    socket.fire('never-listened', 3);
    expect(orders).toEqual([{ orderId: 'o-1' }]);
    expect(names).toEqual([null, [1, 'two'], 'ok', 1]);
  });

  it('onServer() reaches server events named like the client\'s own, which on() keeps for the connection', async () => {
    const { client, socket } = setup();
    const server: unknown[] = [];
    const local: unknown[] = [];
    client.on('status', (s) => local.push(s));
    const off = client.onServer('status', (d) => server.push(d));
    client.onServer('reconnect', (d) => server.push(d));
    socket.fire('status', { from: 'backend' });
    socket.fire('reconnect', 'backend too');
    const connected = client.connect();
    socket.connect();
    await connected;
    expect(server).toEqual([{ from: 'backend' }, 'backend too']);
    expect(local).toEqual(['connecting', 'connected']);
    off();
    socket.fire('status', 'after off');
    expect(server).toHaveLength(2);
  });

  it('onServer() refuses the names Socket.IO keeps for itself', () => {
    const { client } = setup();
    for (const name of ['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']) {
      expect(() => client.onServer(name, () => undefined)).toThrow(TypeError);
    }
  });

  it('onServer() and on() for the same name share one socket listener', () => {
    const { client, socket } = setup();
    const spy = vi.spyOn(socket, 'on');
    const got: string[] = [];
    client.on('ping:app', () => got.push('on'));
    client.onServer('ping:app', () => got.push('onServer'));
    client.on('ping:app', () => got.push('on2'));
    expect(spy.mock.calls.filter((c) => c[0] === 'ping:app')).toHaveLength(1);
    socket.fire('ping:app', {});
    expect(got).toEqual(['on', 'on2', 'onServer']);
  });
});

describe('RealtimeClient.id', () => {
  it('is the socket id while connected, a new one per connection, undefined otherwise', async () => {
    const { client, socket } = setup();
    expect(client.id).toBeUndefined();
    const connected = client.connect();
    socket.connect();
    await connected;
    const first = client.id;
    expect(first).toMatch(/^sock-/);
    expect(first).toBe(socket.id);
    socket.drop();
    expect(client.id).toBeUndefined();
    socket.connect();
    expect(client.id).toMatch(/^sock-/);
    expect(client.id).not.toBe(first);
    client.disconnect();
    expect(client.id).toBeUndefined();
  });
});

describe('RealtimeClient.emit', () => {
  async function connected() {
    const s = setup({ ackTimeoutMs: 5000 });
    const p = s.client.connect();
    s.socket.connect();
    await p;
    return s;
  }

  it('resolves with the acknowledgement', async () => {
    const { client, socket } = await connected();
    const p = client.emit('chat:message', { text: 'hello' });
    expect(socket.last('chat:message').payload).toEqual({ text: 'hello' });
    socket.reply('chat:message', { ok: true, id: 'm1', ts: 5 });
    await expect(p).resolves.toEqual({ ok: true, id: 'm1', ts: 5 });
  });

  it('rejects ok:false with a RealtimeError carrying the protocol code', async () => {
    const { client, socket } = await connected();
    const p = client.emit('chat:message', { text: '' });
    socket.reply('chat:message', { ok: false, error: { code: 'invalid_payload', message: 'text is empty' } });
    const err = await p.catch((e) => e);
    expect(err).toBeInstanceOf(RealtimeError);
    expect(err).toMatchObject({ code: 'invalid_payload', message: 'text is empty', event: 'chat:message' });
    expect(err.isProtocolError).toBe(true);
  });

  it('maps an unknown failure code to internal', async () => {
    const { client, socket } = await connected();
    const p = client.emit('x', {});
    socket.reply('x', { ok: false, error: { code: 'weird', message: '' } });
    await expect(p).rejects.toMatchObject({ code: 'internal' });
  });

  it('rejects with AckTimeoutError after timeoutMs and ignores a late answer', async () => {
    const { client, socket } = await connected();
    const p = client.emit('chat:message', { text: 'slow' }, { timeoutMs: 1500 });
    const settled = vi.fn();
    p.then(settled, settled);
    await vi.advanceTimersByTimeAsync(1499);
    expect(settled).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    const err = await p.catch((e) => e);
    expect(err).toBeInstanceOf(AckTimeoutError);
    expect(err).toMatchObject({ code: 'timeout', timeoutMs: 1500, event: 'chat:message' });
    socket.reply('chat:message', { ok: true, id: 'late', ts: 1 }); // no effect
    expect(settled).toHaveBeenCalledTimes(1);
  });

  it('uses the client default timeout', async () => {
    const { client } = await connected();
    const p = client.emit('presence:sync', {});
    p.catch(() => undefined);
    await vi.advanceTimersByTimeAsync(5000);
    await expect(p).rejects.toBeInstanceOf(AckTimeoutError);
  });

  it('rejects at once with disconnected when not connected, sending nothing', async () => {
    const { client, socket } = setup();
    await expect(client.emit('chat:message', { text: 'x' })).rejects.toMatchObject({ code: 'disconnected' });
    expect(socket.sent).toHaveLength(0);
  });

  it('rejects pending acknowledgements with disconnected when the socket drops', async () => {
    const { client, socket } = await connected();
    const p = client.emit('chat:message', { text: 'x' });
    socket.drop();
    await expect(p).rejects.toMatchObject({ code: 'disconnected' });
  });

  it('sends no payload argument when payload is undefined', async () => {
    const { client, socket } = await connected();
    void client.emit('presence:sync');
    expect(socket.last('presence:sync').payload).toBeUndefined();
    expect(typeof socket.last('presence:sync').ack).toBe('function');
  });

  it('send() emits the payload without an acknowledgement, and nothing while disconnected', async () => {
    const { client, socket } = await connected();
    expect(client.send('chat:message', { text: 'fire and forget' })).toBe(true);
    expect(socket.sent).toEqual([{ event: 'chat:message', payload: { text: 'fire and forget' }, ack: undefined, acked: false }]);
    expect(client.send('presence:leave')).toBe(true);
    expect(socket.last('presence:leave')).toMatchObject({ payload: undefined, ack: undefined });
    socket.drop();
    expect(client.send('chat:message', { text: 'lost' })).toBe(false);
    expect(socket.sent).toHaveLength(2);
    await flush();
  });
});

describe('RealtimeClient transports', () => {
  it('starts with WebSocket and alternates with polling after failed attempts', () => {
    const { client, socket } = setup();
    expect(socket.options.transports).toEqual(['websocket']);
    void client.connect().catch(() => undefined);
    socket.fire('connect_error', new Error('websocket error'));
    socket.io.fire('reconnect_attempt', 1);
    expect(socket.io.opts.transports).toEqual(['polling', 'websocket']);
    socket.fire('connect_error', new Error('xhr poll error'));
    socket.io.fire('reconnect_attempt', 2);
    expect(socket.io.opts.transports).toEqual(['websocket']);
    socket.connect();
    socket.drop();
    socket.io.fire('reconnect_attempt', 1);
    expect(socket.io.opts.transports).toEqual(['websocket']);
  });

  it('keeps explicit transports', () => {
    const { client, socket } = setup({ transports: ['polling'] });
    expect(socket.io.opts.transports).toEqual(['polling']);
    void client.connect().catch(() => undefined);
    socket.fire('connect_error', new Error('xhr poll error'));
    socket.io.fire('reconnect_attempt', 1);
    expect(socket.io.opts.transports).toEqual(['polling']);
    socket.fire('connect_error', new Error('xhr poll error'));
    socket.io.fire('reconnect_attempt', 2);
    expect(socket.io.opts.transports).toEqual(['polling']);
  });

  it('does not take a failed attempt for a refusal', async () => {
    const { client, socket } = setup();
    const p = client.connect();
    const errors: RealtimeError[] = [];
    client.on('connect_error', (e) => errors.push(e));
    socket.fire('connect_error', new Error('websocket error')); // active stays true: it retries
    expect(errors.map((e) => e.code)).toEqual(['connect_failed']);
    expect(client.status).toBe('connecting');
    socket.connect();
    await expect(p).resolves.toBeUndefined();
  });
});
