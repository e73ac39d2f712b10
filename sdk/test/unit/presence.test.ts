import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RealtimeError, type PresenceChannelOptions, type PresenceEvent } from '../../src/index.js';
import { conn, event, flush, joinAck, setup, snapshot, tick, useFakeTimers } from './fake-socket.js';

const ROOM = 'room-1';

beforeEach(() => useFakeTimers());
afterEach(() => {
  vi.useRealTimers();
  delete (globalThis as { document?: unknown }).document;
});

/** joined returns a channel joined as alice (conn c-a, epoch 1) in a room where bob (c-b) already is. */
async function joined(options: Partial<PresenceChannelOptions> = {}, seq = 2) {
  const { client, socket } = setup();
  const p = client.connect();
  socket.connect();
  await p;
  const channel = client.presence(ROOM, { userId: 'alice', state: { mood: 'ok' }, ...options });
  const events: Array<[string, unknown]> = [];
  for (const name of ['join', 'update', 'leave', 'sync', 'error', 'status'] as const) {
    channel.on(name, (arg: unknown) => events.push([name, arg]));
  }
  const join = channel.join();
  socket.reply(
    'presence:join',
    joinAck('c-a', 1, snapshot(ROOM, seq, [conn('c-b', 'bob', { mood: 'busy' }, 3), conn('c-a', 'alice', { mood: 'ok' })])),
  );
  await join;
  events.length = 0;
  return { client, socket, channel, events };
}

function names(events: Array<[string, unknown]>): string[] {
  return events.map(([n]) => n);
}

describe('join', () => {
  it('sends roomId, userId and state, and applies the snapshot by connection and by user', async () => {
    const { client, socket } = setup();
    const c = client.connect();
    socket.connect();
    await c;
    const channel = client.presence(ROOM, { userId: 'alice', state: { mood: 'ok' } });
    const sync = vi.fn();
    channel.on('sync', sync);
    const p = channel.join();
    expect(channel.status).toBe('joining');
    expect(socket.last('presence:join').payload).toEqual({ roomId: ROOM, userId: 'alice', state: { mood: 'ok' } });
    socket.reply(
      'presence:join',
      joinAck(
        'c-a',
        4,
        snapshot(ROOM, 7, [conn('c-b1', 'bob'), conn('c-b2', 'bob', { tab: 2 }), conn('c-a', 'alice', { mood: 'ok' }, 4)]),
      ),
    );
    const result = await p;
    expect(result.self).toEqual({ connId: 'c-a', epoch: 4 });
    expect(result.resumed).toBe(false);
    expect(channel.status).toBe('joined');
    expect(channel.connId).toBe('c-a');
    expect(channel.epoch).toBe(4);
    expect(channel.seq).toBe(7);
    expect(channel.count).toEqual({ connections: 3, members: 2 });
    expect(channel.members.size).toBe(3);
    expect(channel.members.userIds()).toEqual(['bob', 'alice']);
    expect(channel.members.user('bob')!.connections.map((x) => x.connId)).toEqual(['c-b1', 'c-b2']);
    expect(channel.members.get('c-a')!.state).toEqual({ mood: 'ok' });
    expect(sync).toHaveBeenCalledWith(expect.objectContaining({ reason: 'join', self: { connId: 'c-a', epoch: 4 } }));
  });

  it('waits for the socket to connect before joining', async () => {
    const { client, socket } = setup();
    const channel = client.presence(ROOM, { userId: 'alice' });
    const p = channel.join();
    expect(socket.all('presence:join')).toHaveLength(0);
    expect(channel.status).toBe('joining');
    socket.connect();
    expect(socket.last('presence:join').payload).toEqual({ roomId: ROOM, userId: 'alice' });
    socket.reply('presence:join', joinAck('c-a', 1, snapshot(ROOM, 1, [conn('c-a', 'alice')])));
    await expect(p).resolves.toMatchObject({ self: { connId: 'c-a' } });
  });

  it('rejects with the protocol code and goes back to idle when the server refuses', async () => {
    const { client, socket } = setup();
    const c = client.connect();
    socket.connect();
    await c;
    const channel = client.presence(ROOM, { userId: 'alice' });
    const p = channel.join();
    socket.reply('presence:join', { ok: false, error: { code: 'forbidden', message: 'room not in token' } });
    await expect(p).rejects.toMatchObject({ code: 'forbidden' });
    expect(channel.status).toBe('idle');
    expect(channel.active).toBe(false);
  });

  it('rejects when the client gives up connecting', async () => {
    const { client, socket } = setup();
    void client.connect().catch(() => undefined);
    const channel = client.presence(ROOM, { userId: 'alice' });
    const p = channel.join();
    socket.refuse('unauthorized');
    await expect(p).rejects.toMatchObject({ code: 'unauthorized' });
    expect(channel.status).toBe('idle');
  });

  it('returns the same channel for the same room', () => {
    const { client } = setup();
    expect(client.presence(ROOM, { userId: 'a' })).toBe(client.presence(ROOM, { userId: 'a' }));
  });
});

describe('events before the join acknowledgement', () => {
  it('are buffered and only those with seq > snapshot.seq are applied, in order', async () => {
    const { client, socket } = setup();
    const c = client.connect();
    socket.connect();
    await c;
    const channel = client.presence(ROOM, { userId: 'alice' });
    const seen: PresenceEvent[] = [];
    channel.on('join', (e) => seen.push(e));
    channel.on('update', (e) => seen.push(e));
    channel.on('leave', (e) => seen.push(e));
    const p = channel.join();
    // The server broadcasts before the acknowledgement arrives: alice's own join (seq 5,
    // already in the snapshot), then carol joins (7) and bob updates (6), out of order.
    socket.push(event('join', 5, 'c-a', 'alice'));
    socket.push(event('join', 7, 'c-c', 'carol', { state: { x: 1 } }));
    socket.push(event('update', 6, 'c-b', 'bob', { state: { mood: 'away' }, epoch: 2 }));
    socket.push(event('update', 6, 'c-b', 'bob', { state: { mood: 'away' }, epoch: 2 })); // duplicate
    expect(channel.members.size).toBe(0);
    socket.reply('presence:join', joinAck('c-a', 1, snapshot(ROOM, 5, [conn('c-b', 'bob'), conn('c-a', 'alice')])));
    await p;
    expect(seen.map((e) => `${e.type}:${e.seq}`)).toEqual(['update:6', 'join:7']);
    expect(channel.seq).toBe(7);
    expect(channel.members.connections().map((x) => x.connId)).toEqual(['c-b', 'c-a', 'c-c']);
    expect(channel.members.get('c-b')!.state).toEqual({ mood: 'away' });
  });

  it("does not apply the joiner's own join event twice when it arrives after the acknowledgement", async () => {
    const { channel, socket, events } = await joined({}, 2);
    socket.push(event('join', 2, 'c-a', 'alice'));
    expect(events).toEqual([]);
    expect(channel.members.size).toBe(2);
  });

  it('ignores events of other rooms', async () => {
    const { channel, socket, events } = await joined();
    socket.push({ ...event('join', 3, 'c-x', 'xavier'), roomId: 'elsewhere' });
    expect(events).toEqual([]);
    expect(channel.members.has('c-x')).toBe(false);
  });
});

describe('member list merging', () => {
  it('applies join, update and leave events', async () => {
    const { channel, socket, events } = await joined();
    socket.push(event('join', 3, 'c-b2', 'bob', { state: { tab: 2 }, userJoined: false, count: { connections: 3, members: 2 } }));
    socket.push(event('update', 4, 'c-b', 'bob', { state: { mood: 'free' }, epoch: 4 }));
    expect(channel.members.user('bob')!.connections).toHaveLength(2);
    expect(channel.members.get('c-b')).toMatchObject({ state: { mood: 'free' }, epoch: 4 });
    socket.push(event('leave', 5, 'c-b', 'bob', { reason: 'disconnect', userLeft: false, count: { connections: 2, members: 2 } }));
    expect(channel.members.has('c-b')).toBe(false);
    expect(channel.members.hasUser('bob')).toBe(true);
    socket.push(event('leave', 6, 'c-b2', 'bob', { reason: 'leave', userLeft: true, count: { connections: 1, members: 1 } }));
    expect(channel.members.hasUser('bob')).toBe(false);
    expect(channel.count).toEqual({ connections: 1, members: 1 });
    expect(names(events)).toEqual(['join', 'update', 'leave', 'leave']);
    expect(channel.seq).toBe(6);
  });

  it('ignores events it already has (seq <= current)', async () => {
    const { channel, socket, events } = await joined({}, 2);
    socket.push(event('leave', 1, 'c-b', 'bob'));
    socket.push(event('leave', 2, 'c-b', 'bob'));
    expect(events).toEqual([]);
    expect(channel.members.has('c-b')).toBe(true);
  });
});

describe('seq gaps', () => {
  it('calls presence:sync on a gap, replaces the view and applies newer held events', async () => {
    const { channel, socket, events } = await joined({}, 2);
    socket.push(event('join', 5, 'c-d', 'dave')); // 3 and 4 are missing
    expect(socket.pending('presence:sync')).toHaveLength(1);
    socket.push(event('update', 6, 'c-d', 'dave', { state: { hi: true }, epoch: 2 }));
    socket.push(event('join', 7, 'c-e', 'erin'));
    expect(channel.members.has('c-d')).toBe(false); // held until the snapshot
    socket.reply('presence:sync', {
      ok: true,
      snapshot: snapshot(ROOM, 6, [conn('c-a', 'alice', { mood: 'ok' }), conn('c-c', 'carol'), conn('c-d', 'dave', { hi: true }, 2)]),
    });
    await flush();
    expect(names(events)).toEqual(['sync', 'join']);
    expect(events[0]![1]).toMatchObject({ reason: 'gap' });
    expect(channel.members.connections().map((x) => x.connId)).toEqual(['c-a', 'c-c', 'c-d', 'c-e']);
    expect(channel.members.has('c-b')).toBe(false); // bob left during the gap
    expect(channel.seq).toBe(7);
  });

  it('re-joins when the sync answers not_joined', async () => {
    const { socket, channel } = await joined({}, 2);
    socket.push(event('join', 9, 'c-d', 'dave'));
    socket.reply('presence:sync', { ok: false, error: { code: 'not_joined', message: 'gone' } });
    await flush();
    expect(socket.pending('presence:join')).toHaveLength(1);
    expect(socket.last('presence:join').payload.resume).toBeUndefined();
    expect(channel.status).toBe('joining');
  });

  it('accepts the jump after repeated syncs still find a gap', async () => {
    const { socket, channel, events } = await joined({}, 2);
    // Every snapshot comes back one event short of what has arrived since.
    socket.push(event('join', 20, 'c-0', 'u0'));
    socket.reply('presence:sync', { ok: true, snapshot: snapshot(ROOM, 18, [conn('c-a', 'alice')]) });
    await flush();
    socket.push(event('join', 22, 'c-1', 'u1'));
    socket.reply('presence:sync', { ok: true, snapshot: snapshot(ROOM, 18, [conn('c-a', 'alice')]) });
    await flush();
    socket.reply('presence:sync', { ok: true, snapshot: snapshot(ROOM, 18, [conn('c-a', 'alice')]) });
    await flush();
    expect(socket.all('presence:sync')).toHaveLength(3);
    expect(socket.pending('presence:sync')).toHaveLength(0);
    expect(events.find(([n]) => n === 'error')![1]).toMatchObject({ code: 'seq_gap' });
    expect(channel.members.has('c-0')).toBe(true);
    expect(channel.members.has('c-1')).toBe(true);
    expect(channel.seq).toBe(22);
    socket.push(event('join', 23, 'c-z', 'zed')); // in order again
    expect(channel.members.has('c-z')).toBe(true);
  });
});

describe('heartbeats', () => {
  it('are sent every heartbeatIntervalMs with the latest epoch', async () => {
    const { socket } = await joined({ heartbeatIntervalMs: 10_000 });
    await vi.advanceTimersByTimeAsync(9_999);
    expect(socket.all('presence:heartbeat')).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(socket.last('presence:heartbeat').payload).toEqual({ epoch: 1 });
    socket.reply('presence:heartbeat', { ok: true, epoch: 1, changed: false });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(socket.all('presence:heartbeat')).toHaveLength(2);
    socket.reply('presence:heartbeat', { ok: true, epoch: 1, changed: false });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(socket.all('presence:heartbeat')).toHaveLength(3);
  });

  it('keep a fixed rate when acknowledgements are slow', async () => {
    const { socket } = await joined({ heartbeatIntervalMs: 1000 });
    await vi.advanceTimersByTimeAsync(1000);
    await vi.advanceTimersByTimeAsync(400);
    socket.reply('presence:heartbeat', { ok: true, epoch: 1, changed: false });
    await vi.advanceTimersByTimeAsync(599);
    expect(socket.all('presence:heartbeat')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(socket.all('presence:heartbeat')).toHaveLength(2);
  });

  it('carry the epoch from heartbeat acknowledgements and own update events', async () => {
    const { socket, channel } = await joined({ heartbeatIntervalMs: 1000 });
    await vi.advanceTimersByTimeAsync(1000);
    socket.reply('presence:heartbeat', { ok: true, epoch: 5, changed: false });
    await flush();
    expect(channel.epoch).toBe(5);
    socket.push(event('update', 3, 'c-a', 'alice', { state: { mood: 'new' }, epoch: 6 }));
    expect(channel.epoch).toBe(6);
    expect(channel.state).toEqual({ mood: 'new' });
    // Another connection's update does not touch our epoch.
    socket.push(event('update', 4, 'c-b', 'bob', { state: {}, epoch: 99 }));
    await vi.advanceTimersByTimeAsync(1000);
    expect(socket.last('presence:heartbeat').payload).toEqual({ epoch: 6 });
  });

  it('count misses and report an error once the threshold is reached, reset by an ack', async () => {
    const { socket, channel, events } = await joined({ heartbeatIntervalMs: 1000, maxMissedHeartbeats: 3 });
    const errors = () => events.filter(([n]) => n === 'error').map(([, e]) => e as RealtimeError);
    await tick(1000); // heartbeat 1 sent
    expect(socket.all('presence:heartbeat')).toHaveLength(1);
    await tick(1000); // no ack within the 1000 ms timeout: missed; heartbeat 2 sent at once
    expect(channel.missedHeartbeats).toBe(1);
    expect(socket.all('presence:heartbeat')).toHaveLength(2);
    await tick(1000);
    expect(channel.missedHeartbeats).toBe(2);
    expect(errors()).toHaveLength(0);
    await tick(1000);
    expect(channel.missedHeartbeats).toBe(3);
    expect(errors()).toHaveLength(1);
    expect(errors()[0]).toBeInstanceOf(RealtimeError);
    expect(errors()[0]!.code).toBe('heartbeat_timeout');
    await tick(1000);
    expect(channel.missedHeartbeats).toBe(4);
    expect(errors()).toHaveLength(1); // once per streak
    const inFlight = socket.pending('presence:heartbeat');
    inFlight[inFlight.length - 1]!.ack!({ ok: true, epoch: 1, changed: false });
    await flush();
    expect(channel.missedHeartbeats).toBe(0);
    expect(channel.status).toBe('joined');
  });

  it('count unavailable answers as missed', async () => {
    const { socket, channel } = await joined({ heartbeatIntervalMs: 1000 });
    await vi.advanceTimersByTimeAsync(1000);
    socket.reply('presence:heartbeat', { ok: false, error: { code: 'unavailable', message: 'redis' } });
    await flush();
    expect(channel.missedHeartbeats).toBe(1);
  });

  it('stop while the socket is down and do not count as missed', async () => {
    const { socket, channel } = await joined({ heartbeatIntervalMs: 1000 });
    socket.drop();
    await vi.advanceTimersByTimeAsync(5000);
    expect(socket.all('presence:heartbeat')).toHaveLength(0);
    expect(channel.missedHeartbeats).toBe(0);
    expect(channel.status).toBe('reconnecting');
  });

  it('refresh the epoch with presence:sync after stale_epoch', async () => {
    const { socket, channel } = await joined({ heartbeatIntervalMs: 1000 });
    await vi.advanceTimersByTimeAsync(1000);
    socket.reply('presence:heartbeat', { ok: false, error: { code: 'stale_epoch', message: 'stale' } });
    await flush();
    socket.reply('presence:sync', { ok: true, snapshot: snapshot(ROOM, 2, [conn('c-a', 'alice', { mood: 'ok' }, 9)]) });
    await flush();
    expect(channel.epoch).toBe(9);
    await vi.advanceTimersByTimeAsync(1000);
    expect(socket.last('presence:heartbeat').payload).toEqual({ epoch: 9 });
  });

  it('go out at once when a hidden tab is shown again', async () => {
    const doc = new EventTarget() as EventTarget & { visibilityState: string };
    doc.visibilityState = 'visible';
    (globalThis as { document?: unknown }).document = doc;
    const { socket } = await joined({ heartbeatIntervalMs: 10_000 });
    await vi.advanceTimersByTimeAsync(4000);
    doc.visibilityState = 'hidden';
    doc.dispatchEvent(new Event('visibilitychange'));
    await flush();
    expect(socket.all('presence:heartbeat')).toHaveLength(0);
    doc.visibilityState = 'visible';
    doc.dispatchEvent(new Event('visibilitychange'));
    await flush();
    expect(socket.all('presence:heartbeat')).toHaveLength(1);
    socket.reply('presence:heartbeat', { ok: true, epoch: 1, changed: false });
    // The schedule restarts from the immediate heartbeat.
    await vi.advanceTimersByTimeAsync(9_999);
    expect(socket.all('presence:heartbeat')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(socket.all('presence:heartbeat')).toHaveLength(2);
  });
});

describe('setState', () => {
  it('sends a heartbeat with patchState and the epoch, and resolves with the ack', async () => {
    const { socket, channel } = await joined();
    const p = channel.setState({ mood: 'focused', typing: true });
    await flush();
    expect(socket.last('presence:heartbeat').payload).toEqual({ epoch: 1, patchState: { mood: 'focused', typing: true } });
    socket.reply('presence:heartbeat', { ok: true, epoch: 2, changed: true });
    await expect(p).resolves.toEqual({ epoch: 2, changed: true, queued: false });
    expect(channel.epoch).toBe(2);
    expect(channel.state).toEqual({ mood: 'focused', typing: true });
    const del = channel.setState({ typing: null });
    await flush();
    socket.reply('presence:heartbeat', { ok: true, epoch: 3, changed: true });
    await del;
    expect(channel.state).toEqual({ mood: 'focused' });
  });

  it('waits for the heartbeat in flight so that it carries the new epoch', async () => {
    const { socket, channel } = await joined({ heartbeatIntervalMs: 1000 });
    const first = channel.setState({ a: 1 });
    const second = channel.setState({ b: 2 });
    await flush();
    expect(socket.all('presence:heartbeat')).toHaveLength(1);
    socket.reply('presence:heartbeat', { ok: true, epoch: 2, changed: true });
    await first;
    await flush();
    expect(socket.all('presence:heartbeat')).toHaveLength(2);
    expect(socket.last('presence:heartbeat').payload).toEqual({ epoch: 2, patchState: { b: 2 } });
    socket.reply('presence:heartbeat', { ok: true, epoch: 3, changed: true });
    await expect(second).resolves.toMatchObject({ epoch: 3 });
  });

  it('rejects a refused patch with its code', async () => {
    const { socket, channel } = await joined();
    const p = channel.setState({ big: 'x'.repeat(5000) });
    await flush();
    socket.reply('presence:heartbeat', { ok: false, error: { code: 'payload_too_large', message: 'too big' } });
    await expect(p).rejects.toMatchObject({ code: 'payload_too_large' });
    expect(channel.state).toEqual({ mood: 'ok' });
  });

  it('before join, changes the state the join will carry', async () => {
    const { client, socket } = setup();
    const c = client.connect();
    socket.connect();
    await c;
    const channel = client.presence(ROOM, { userId: 'alice', state: { a: 1 } });
    await expect(channel.setState({ b: 2 })).resolves.toMatchObject({ queued: true });
    void channel.join();
    expect(socket.last('presence:join').payload.state).toEqual({ a: 1, b: 2 });
  });

  it('while reconnecting, is queued and carried by the resume', async () => {
    const { socket, channel } = await joined();
    socket.drop();
    await expect(channel.setState({ mood: 'away', typing: null })).resolves.toMatchObject({ queued: true });
    expect(channel.state).toEqual({ mood: 'away' });
    socket.connect();
    expect(socket.last('presence:join').payload).toEqual({
      roomId: ROOM,
      userId: 'alice',
      resume: { connId: 'c-a', epoch: 1 },
      state: { mood: 'away', typing: null },
    });
  });
});

describe('not_joined', () => {
  it('leads to a fresh join whose snapshot replaces the view', async () => {
    const { socket, channel, events } = await joined({ heartbeatIntervalMs: 1000 });
    await vi.advanceTimersByTimeAsync(1000);
    socket.reply('presence:heartbeat', { ok: false, error: { code: 'not_joined', message: 'expired' } });
    await flush();
    const join = socket.last('presence:join');
    expect(join.payload).toEqual({ roomId: ROOM, userId: 'alice', state: { mood: 'ok' } });
    expect(channel.status).toBe('joining');
    socket.reply('presence:join', joinAck('c-a2', 1, snapshot(ROOM, 12, [conn('c-z', 'zoe'), conn('c-a2', 'alice', { mood: 'ok' })])));
    await flush();
    expect(channel.status).toBe('joined');
    expect(channel.connId).toBe('c-a2');
    expect(channel.members.connections().map((c) => c.connId)).toEqual(['c-z', 'c-a2']);
    expect(channel.seq).toBe(12);
    expect(events.find(([n]) => n === 'sync')![1]).toMatchObject({ reason: 'rejoin' });
    await vi.advanceTimersByTimeAsync(1000);
    expect(socket.last('presence:heartbeat').payload).toEqual({ epoch: 1 });
  });

  it("a leave event for the channel's own connection (expired) also re-joins", async () => {
    const { socket, channel } = await joined();
    socket.push(event('leave', 3, 'c-a', 'alice', { reason: 'expired' }));
    expect(socket.pending('presence:join')).toHaveLength(1);
    expect(channel.status).toBe('joining');
  });

  it('retries an automatic re-join that times out', async () => {
    const { socket, channel, events } = await joined({ heartbeatIntervalMs: 1000, ackTimeoutMs: 2000, retryDelayMs: 500 });
    await vi.advanceTimersByTimeAsync(1000);
    socket.reply('presence:heartbeat', { ok: false, error: { code: 'not_joined', message: '' } });
    await flush();
    await vi.advanceTimersByTimeAsync(2000); // the join times out
    expect(events.find(([n]) => n === 'error')![1]).toMatchObject({ code: 'timeout' });
    expect(socket.all('presence:join')).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(500);
    expect(socket.all('presence:join')).toHaveLength(3);
    expect(channel.status).toBe('joining');
  });
});

describe('reconnect', () => {
  it('resumes the connection with connId and epoch; nobody flaps', async () => {
    const { client, socket, channel, events } = await joined({ heartbeatIntervalMs: 1000 });
    await vi.advanceTimersByTimeAsync(1000);
    socket.reply('presence:heartbeat', { ok: true, epoch: 3, changed: false });
    await flush();
    const reconnected = vi.fn();
    client.on('reconnect', reconnected);
    socket.drop('transport close');
    expect(channel.status).toBe('reconnecting');
    expect(channel.members.size).toBe(2); // the view stays while reconnecting
    socket.io.fire('reconnect_attempt', 1);
    socket.connect();
    expect(reconnected).toHaveBeenCalledWith(1);
    expect(socket.last('presence:join').payload).toEqual({ roomId: ROOM, userId: 'alice', resume: { connId: 'c-a', epoch: 3 } });
    socket.reply(
      'presence:join',
      joinAck('c-a', 4, snapshot(ROOM, 2, [conn('c-b', 'bob', { mood: 'busy' }, 3), conn('c-a', 'alice', { mood: 'ok' }, 4)])),
    );
    await flush();
    expect(channel.status).toBe('joined');
    expect(channel.self).toEqual({ connId: 'c-a', epoch: 4 });
    expect(names(events).filter((n) => n === 'join' || n === 'leave')).toEqual([]);
    expect(events.find(([n]) => n === 'sync')![1]).toMatchObject({ reason: 'resume' });
    await vi.advanceTimersByTimeAsync(1000);
    expect(socket.last('presence:heartbeat').payload).toEqual({ epoch: 4 });
  });

  it('takes the new connection and its snapshot when the resume could not be honoured', async () => {
    const { socket, channel, events } = await joined();
    socket.drop();
    socket.connect();
    socket.reply('presence:join', joinAck('c-new', 1, snapshot(ROOM, 9, [conn('c-new', 'alice', {})])));
    await flush();
    expect(channel.connId).toBe('c-new');
    expect(channel.members.size).toBe(1);
    expect(events.find(([n]) => n === 'sync')![1]).toMatchObject({ reason: 'join' });
    // The fresh connection got no state (the resume carried none): the channel restores it.
    expect(socket.last('presence:heartbeat').payload).toEqual({ epoch: 1, patchState: { mood: 'ok' } });
  });

  it('holds events that arrive before the resume acknowledgement', async () => {
    const { socket, channel } = await joined({}, 2);
    socket.drop();
    socket.connect();
    socket.push(event('update', 3, 'c-a', 'alice', { state: { mood: 'ok', n: 1 }, epoch: 2 })); // the resume's own update
    socket.push(event('join', 4, 'c-f', 'fay'));
    socket.reply('presence:join', joinAck('c-a', 2, snapshot(ROOM, 3, [conn('c-b', 'bob'), conn('c-a', 'alice', { mood: 'ok', n: 1 }, 2)])));
    await flush();
    expect(channel.seq).toBe(4);
    expect(channel.members.connections().map((c) => c.connId)).toEqual(['c-b', 'c-a', 'c-f']);
  });

  it('joins (not resumes) when the first join had not completed before the drop', async () => {
    const { client, socket } = setup();
    const c = client.connect();
    socket.connect();
    await c;
    const channel = client.presence(ROOM, { userId: 'alice' });
    const p = channel.join();
    socket.drop();
    socket.connect();
    expect(socket.all('presence:join')).toHaveLength(2);
    expect(socket.last('presence:join').payload.resume).toBeUndefined();
    socket.reply('presence:join', { ok: true, self: { connId: 'late', epoch: 1 }, snapshot: snapshot(ROOM, 1, []) }); // first: ignored
    socket.reply('presence:join', joinAck('c-a', 1, snapshot(ROOM, 1, [conn('c-a', 'alice')])));
    await expect(p).resolves.toMatchObject({ self: { connId: 'c-a' } });
  });
});

describe('leave', () => {
  it('sends presence:leave, stops heartbeats and clears the view', async () => {
    const { socket, channel } = await joined({ heartbeatIntervalMs: 1000 });
    const p = channel.leave();
    expect(socket.last('presence:leave').payload).toEqual({});
    socket.reply('presence:leave', { ok: true, removed: true });
    await expect(p).resolves.toEqual({ removed: true });
    expect(channel.status).toBe('left');
    expect(channel.members.size).toBe(0);
    await vi.advanceTimersByTimeAsync(5000);
    expect(socket.all('presence:heartbeat')).toHaveLength(0);
    socket.push(event('join', 3, 'c-x', 'xavier'));
    expect(channel.members.size).toBe(0);
  });

  it('can join again after leaving', async () => {
    const { socket, channel } = await joined();
    const p = channel.leave();
    socket.reply('presence:leave', { ok: true, removed: true });
    await p;
    void channel.join();
    expect(socket.last('presence:join').payload.resume).toBeUndefined();
  });

  it('rejects a join still waiting with closed', async () => {
    const { client } = setup();
    const channel = client.presence(ROOM, { userId: 'alice' });
    const p = channel.join();
    await expect(channel.leave()).resolves.toEqual({ removed: false });
    await expect(p).rejects.toMatchObject({ code: 'closed' });
  });

  it('client.disconnect() leaves joined channels without waiting', async () => {
    const { client, socket, channel } = await joined();
    client.disconnect();
    const leave = socket.last('presence:leave');
    expect(leave.ack).toBeUndefined();
    expect(channel.status).toBe('left');
  });
});

describe('already_joined', () => {
  it('leaves the room the server still holds, then joins again', async () => {
    const { client, socket } = setup();
    const c = client.connect();
    socket.connect();
    await c;
    const channel = client.presence(ROOM, { userId: 'alice' });
    const p = channel.join();
    socket.reply('presence:join', { ok: false, error: { code: 'already_joined', message: '' } });
    await flush();
    socket.reply('presence:leave', { ok: true, removed: true });
    await flush();
    expect(socket.all('presence:join')).toHaveLength(2);
    socket.reply('presence:join', joinAck('c-a', 1, snapshot(ROOM, 3, [conn('c-a', 'alice')])));
    await expect(p).resolves.toMatchObject({ self: { connId: 'c-a' } });
  });
});

describe('presence:resync', () => {
  it('is answered with presence:sync, whose snapshot replaces the view', async () => {
    const { socket, channel, events } = await joined({}, 2);
    socket.fire('presence:resync', { roomId: 'elsewhere', seq: 9 });
    expect(socket.all('presence:sync')).toHaveLength(0);
    socket.fire('presence:resync', { roomId: ROOM, seq: 4 });
    expect(socket.all('presence:sync')).toHaveLength(1);
    socket.push(event('join', 5, 'c-e', 'erin')); // held until the snapshot
    socket.reply('presence:sync', { ok: true, snapshot: snapshot(ROOM, 4, [conn('c-a', 'alice', { mood: 'ok' }), conn('c-d', 'dave')]) });
    await flush();
    expect(events[0]).toEqual(['sync', expect.objectContaining({ reason: 'resync' })]);
    expect(channel.members.connections().map((c) => c.connId)).toEqual(['c-a', 'c-d', 'c-e']);
    expect(channel.seq).toBe(5);
  });

  it('during a sync in flight, syncs once more after it', async () => {
    const { socket, channel } = await joined({}, 2);
    socket.push(event('join', 5, 'c-d', 'dave')); // a gap: sync 1
    socket.fire('presence:resync', { roomId: ROOM, seq: 6 });
    socket.fire('presence:resync', { roomId: ROOM, seq: 6 });
    expect(socket.all('presence:sync')).toHaveLength(1);
    socket.reply('presence:sync', { ok: true, snapshot: snapshot(ROOM, 5, [conn('c-a', 'alice'), conn('c-d', 'dave')]) });
    await flush();
    expect(socket.all('presence:sync')).toHaveLength(2);
    socket.reply('presence:sync', { ok: true, snapshot: snapshot(ROOM, 6, [conn('c-a', 'alice')]) });
    await flush();
    expect(socket.all('presence:sync')).toHaveLength(2);
    expect(channel.seq).toBe(6);
    expect(channel.members.has('c-d')).toBe(false);
  });

  it('is ignored while reconnecting (the resume brings a fresh snapshot)', async () => {
    const { socket } = await joined();
    socket.drop();
    socket.fire('presence:resync', { roomId: ROOM, seq: 4 });
    expect(socket.all('presence:sync')).toHaveLength(0);
  });
});
