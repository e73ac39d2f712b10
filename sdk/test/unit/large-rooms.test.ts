import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { PresenceChannelOptions } from '../../src/index.js';
import type { PresenceConnection, PresenceMembersPage } from '../../src/protocol.js';
import { conn, event, flush, joinAck, setup, snapshot, tick, useFakeTimers } from './fake-socket.js';

const ROOM = 'room-1';

beforeEach(() => useFakeTimers());
afterEach(() => vi.useRealTimers());

/** start connects a client and starts a join of alice with `options`; the test answers it. */
async function start(options: Partial<PresenceChannelOptions> = {}) {
  const { client, socket } = setup();
  const p = client.connect();
  socket.connect();
  await p;
  const channel = client.presence(ROOM, { userId: 'alice', ...options });
  const events: Array<[string, any]> = [];
  for (const name of ['join', 'update', 'leave', 'sync', 'error', 'count'] as const) {
    channel.on(name, (arg: unknown) => events.push([name, arg]));
  }
  const join = channel.join();
  return { client, socket, channel, events, join };
}

function page(seq: number, connections: PresenceConnection[], next: string | null, total = 0): PresenceMembersPage {
  return {
    roomId: ROOM,
    seq,
    count: { connections: total, members: total },
    members: [...new Set(connections.map((c) => c.userId))],
    connections,
    next,
  };
}

function names(events: Array<[string, unknown]>): string[] {
  return events.map(([n]) => n);
}

describe('default options', () => {
  it('send nothing new on the join and sync', async () => {
    const { socket, channel, join } = await start();
    expect(socket.last('presence:join').payload).toEqual({ roomId: ROOM, userId: 'alice' });
    socket.reply('presence:join', joinAck('c-a', 1, snapshot(ROOM, 2, [conn('c-a', 'alice')])));
    await join;
    expect(channel.complete).toBe(true);
    socket.push(event('join', 4, 'c-b', 'bob'));
    expect(socket.last('presence:sync').payload).toEqual({});
  });
});

describe('batched events', () => {
  it('are applied one by one, like single events', async () => {
    const { socket, channel, events, join } = await start({ events: 'batched' });
    expect(socket.last('presence:join').payload).toEqual({ roomId: ROOM, userId: 'alice', events: 'batched' });
    socket.reply('presence:join', joinAck('c-a', 1, snapshot(ROOM, 2, [conn('c-a', 'alice')])));
    await join;
    events.length = 0;
    socket.fire('presence:batch', {
      roomId: ROOM,
      events: [
        event('join', 3, 'c-b', 'bob', { count: { connections: 2, members: 2 } }),
        event('update', 4, 'c-b', 'bob', { state: { x: 1 }, epoch: 2, count: { connections: 2, members: 2 } }),
        event('join', 5, 'c-c', 'carol', { count: { connections: 3, members: 3 } }),
        event('leave', 6, 'c-b', 'bob', { count: { connections: 2, members: 2 } }),
      ],
    });
    expect(names(events)).toEqual(['count', 'join', 'update', 'count', 'join', 'count', 'leave']);
    expect(channel.seq).toBe(6);
    expect(channel.count).toEqual({ connections: 2, members: 2 });
    expect(channel.members.connections().map((c) => c.connId)).toEqual(['c-a', 'c-c']);
    expect(socket.all('presence:sync')).toHaveLength(0);
  });

  it('ignore batches of other rooms', async () => {
    const { socket, channel, join } = await start({ events: 'batched' });
    socket.reply('presence:join', joinAck('c-a', 1, snapshot(ROOM, 2, [conn('c-a', 'alice')])));
    await join;
    socket.fire('presence:batch', { roomId: 'elsewhere', events: [event('join', 3, 'c-b', 'bob')] });
    expect(channel.seq).toBe(2);
  });

  it('find a gap inside a batch, sync, and apply the newer events of the batch after it', async () => {
    const { socket, channel, events, join } = await start({ events: 'batched' });
    socket.reply('presence:join', joinAck('c-a', 1, snapshot(ROOM, 2, [conn('c-a', 'alice')])));
    await join;
    events.length = 0;
    socket.fire('presence:batch', {
      roomId: ROOM,
      events: [event('join', 3, 'c-b', 'bob'), event('join', 5, 'c-d', 'dave'), event('update', 6, 'c-d', 'dave', { state: { y: 2 } })],
    });
    // 3 applied, then 4 is missing: a sync, with the default (full) snapshot.
    expect(channel.seq).toBe(3);
    expect(socket.last('presence:sync').payload).toEqual({});
    socket.reply('presence:sync', {
      ok: true,
      snapshot: snapshot(ROOM, 5, [conn('c-a', 'alice'), conn('c-c', 'carol'), conn('c-d', 'dave')]),
    });
    await flush();
    expect(events.find(([n]) => n === 'sync')![1]).toMatchObject({ reason: 'gap' });
    expect(channel.seq).toBe(6);
    expect(channel.members.connections().map((c) => c.connId)).toEqual(['c-a', 'c-c', 'c-d']);
    expect(channel.members.get('c-d')!.state).toEqual({ y: 2 });
  });

  it('held during the join are applied after the snapshot when newer', async () => {
    const { socket, channel, join } = await start({ events: 'batched' });
    socket.fire('presence:batch', { roomId: ROOM, events: [event('join', 2, 'c-a', 'alice'), event('join', 3, 'c-b', 'bob')] });
    socket.reply('presence:join', joinAck('c-a', 1, snapshot(ROOM, 2, [conn('c-a', 'alice')])));
    await join;
    expect(channel.seq).toBe(3);
    expect(channel.members.has('c-b')).toBe(true);
  });
});

describe('count mode', () => {
  it('joins with a count snapshot, keeps the count live and lists no members', async () => {
    const { socket, channel, events, join } = await start({ events: 'count' });
    expect(socket.last('presence:join').payload).toEqual({ roomId: ROOM, userId: 'alice', events: 'count', snapshot: 'count' });
    // A count that arrives before the acknowledgement is held, and applied if newer.
    socket.fire('presence:count', { roomId: ROOM, seq: 9, count: { connections: 301, members: 300 } });
    socket.reply('presence:join', {
      ok: true,
      self: { connId: 'c-a', epoch: 1 },
      snapshot: { roomId: ROOM, seq: 8, count: { connections: 300, members: 299 } },
    });
    const result = await join;
    expect(result.snapshot).toEqual({ roomId: ROOM, seq: 8, members: [], connections: [], count: { connections: 300, members: 299 } });
    expect(channel.count).toEqual({ connections: 301, members: 300 });
    expect(channel.seq).toBe(9);
    expect(channel.members.size).toBe(0);
    expect(channel.complete).toBe(false);
    const change = vi.fn();
    channel.on('change', change);
    events.length = 0;
    // Counts skip seqs (one per tick): that is no gap.
    socket.fire('presence:count', { roomId: ROOM, seq: 20, count: { connections: 320, members: 310 } });
    socket.fire('presence:count', { roomId: ROOM, seq: 15, count: { connections: 1, members: 1 } }); // older: ignored
    socket.fire('presence:count', { roomId: 'elsewhere', seq: 30, count: { connections: 1, members: 1 } });
    expect(events).toEqual([['count', { connections: 320, members: 310 }]]);
    expect(change).toHaveBeenCalledTimes(1);
    expect(channel.seq).toBe(20);
    expect(socket.all('presence:sync')).toHaveLength(0);
  });

  it('answers presence:resync with a count sync', async () => {
    const { socket, channel, events, join } = await start({ events: 'count' });
    socket.reply('presence:join', {
      ok: true,
      self: { connId: 'c-a', epoch: 1 },
      snapshot: { roomId: ROOM, seq: 8, count: { connections: 300, members: 299 } },
    });
    await join;
    events.length = 0;
    socket.fire('presence:resync', { roomId: ROOM, seq: 40 });
    expect(socket.last('presence:sync').payload).toEqual({ snapshot: 'count' });
    socket.reply('presence:sync', { ok: true, snapshot: { roomId: ROOM, seq: 40, count: { connections: 250, members: 250 } } });
    await flush();
    expect(names(events)).toEqual(['sync', 'count']);
    expect(events[0]![1]).toMatchObject({ reason: 'resync', snapshot: { seq: 40, members: [], connections: [] } });
    expect(channel.count).toEqual({ connections: 250, members: 250 });
    expect(channel.seq).toBe(40);
  });

  it('can still load pages of members, as a picture of the room', async () => {
    const { socket, channel, join } = await start({ events: 'count', pageSize: 2 });
    socket.reply('presence:join', {
      ok: true,
      self: { connId: 'c-a', epoch: 1 },
      snapshot: { roomId: ROOM, seq: 8, count: { connections: 3, members: 3 } },
    });
    await join;
    const first = channel.loadMore();
    await flush();
    expect(socket.last('presence:members').payload).toEqual({ limit: 2 });
    socket.reply('presence:members', { ok: true, page: page(8, [conn('c-a', 'alice'), conn('c-b', 'bob')], 'c-b', 3) });
    expect((await first)!.next).toBe('c-b');
    expect(channel.members.size).toBe(2);
    expect(channel.complete).toBe(false);
    const second = channel.loadMore();
    await flush();
    expect(socket.last('presence:members').payload).toEqual({ after: 'c-b', limit: 2 });
    socket.reply('presence:members', { ok: true, page: page(9, [conn('c-c', 'carol')], null, 3) });
    await second;
    expect(channel.complete).toBe(true);
    expect(channel.count).toEqual({ connections: 3, members: 3 });
    // The count changes: the picture is stale, the next loadMore starts a new one.
    socket.fire('presence:count', { roomId: ROOM, seq: 12, count: { connections: 2, members: 2 } });
    expect(channel.complete).toBe(false);
    const again = channel.loadMore();
    await flush();
    expect(socket.last('presence:members').payload).toEqual({ limit: 2 });
    socket.reply('presence:members', { ok: true, page: page(12, [conn('c-a', 'alice'), conn('c-c', 'carol')], null, 2) });
    await again;
    expect(channel.members.connections().map((c) => c.connId)).toEqual(['c-a', 'c-c']);
    expect(channel.complete).toBe(true);
  });

  it("'none' sends events none and takes a count snapshot", async () => {
    const { socket, channel, join } = await start({ events: 'none' });
    expect(socket.last('presence:join').payload).toEqual({ roomId: ROOM, userId: 'alice', events: 'none', snapshot: 'count' });
    socket.reply('presence:join', {
      ok: true,
      self: { connId: 'c-a', epoch: 1 },
      snapshot: { roomId: ROOM, seq: 3, count: { connections: 3, members: 2 } },
    });
    await join;
    expect(channel.count).toEqual({ connections: 3, members: 2 });
    expect(channel.status).toBe('joined');
  });
});

describe('paging', () => {
  /** pagedJoin joins with a page snapshot of c-a, c-b (seq 10) in a room of 5. */
  async function pagedJoin(events: 'each' | 'batched' = 'each') {
    const s = await start({ events, snapshot: 'page', pageSize: 2 });
    expect(s.socket.last('presence:join').payload).toMatchObject({ snapshot: 'page', pageSize: 2 });
    s.socket.reply('presence:join', joinAck('c-a', 1, page(10, [conn('c-a', 'alice'), conn('c-b', 'bob')], 'c-b', 5)));
    await s.join;
    return s;
  }

  it('starts incomplete with the first page and its count', async () => {
    const { channel } = await pagedJoin();
    expect(channel.complete).toBe(false);
    expect(channel.count).toEqual({ connections: 5, members: 5 });
    expect(channel.members.connections().map((c) => c.connId)).toEqual(['c-a', 'c-b']);
  });

  it('merges pages with events of a higher seq: updates, leaves and joins win', async () => {
    const { socket, channel } = await pagedJoin();
    // Events after the first page (seq 10).
    socket.push(event('update', 11, 'c-c', 'carol', { state: { v: 'new' }, epoch: 3 }));
    socket.push(event('leave', 12, 'c-d', 'dave'));
    socket.push(event('join', 13, 'c-f', 'frank'));
    // The second page was read at seq 10: before all three.
    const more = channel.loadMore();
    await flush();
    expect(socket.last('presence:members').payload).toEqual({ after: 'c-b', limit: 2 });
    socket.reply('presence:members', {
      ok: true,
      page: page(10, [conn('c-c', 'carol', { v: 'old' }), conn('c-d', 'dave')], 'c-d', 5),
    });
    await more;
    expect(channel.members.get('c-c')!.state).toEqual({ v: 'new' });
    expect(channel.members.has('c-d')).toBe(false);
    expect(channel.complete).toBe(false);
    // The last page, read later (seq 14, after an update of e at 14 that is still in flight).
    const last = channel.loadMore();
    await flush();
    expect(socket.last('presence:members').payload).toEqual({ after: 'c-d', limit: 2 });
    socket.reply('presence:members', {
      ok: true,
      page: page(14, [conn('c-e', 'erin', { v: 2 }), conn('c-f', 'frank')], null, 5),
    });
    await last;
    expect(channel.complete).toBe(true);
    expect(await channel.loadMore()).toBeNull();
    socket.push(event('update', 14, 'c-e', 'erin', { state: { v: 2 }, epoch: 2 }));
    expect(channel.members.connections().map((c) => c.connId).sort()).toEqual(['c-a', 'c-b', 'c-c', 'c-e', 'c-f']);
    expect(channel.members.get('c-e')!.state).toEqual({ v: 2 });
    expect(socket.all('presence:sync')).toHaveLength(0);
  });

  it('a page newer than an event keeps its listing', async () => {
    const { socket, channel } = await pagedJoin();
    socket.push(event('update', 11, 'c-c', 'carol', { state: { v: 1 }, epoch: 2 }));
    const more = channel.loadMore();
    await flush();
    socket.reply('presence:members', { ok: true, page: page(12, [conn('c-c', 'carol', { v: 2 }, 3)], 'c-c', 5) });
    await more;
    expect(channel.members.get('c-c')!.state).toEqual({ v: 2 });
  });

  it('loadAll pages until the last, one request at a time', async () => {
    const { socket, channel } = await pagedJoin();
    const all = channel.loadAll();
    await flush();
    expect(socket.pending('presence:members')).toHaveLength(1);
    socket.reply('presence:members', { ok: true, page: page(10, [conn('c-c', 'carol'), conn('c-d', 'dave')], 'c-d', 5) });
    await flush();
    expect(socket.pending('presence:members')).toHaveLength(1);
    expect(socket.last('presence:members').payload).toEqual({ after: 'c-d', limit: 2 });
    socket.reply('presence:members', { ok: true, page: page(10, [conn('c-e', 'erin')], null, 5) });
    await all;
    expect(channel.complete).toBe(true);
    expect(channel.members.size).toBe(5);
  });

  it('after a gap, syncs with a page snapshot and loads again the pages it had', async () => {
    const { socket, channel, events } = await pagedJoin('batched');
    const more = channel.loadMore();
    await flush();
    socket.reply('presence:members', { ok: true, page: page(10, [conn('c-c', 'carol'), conn('c-d', 'dave')], 'c-d', 5) });
    await more;
    events.length = 0;
    socket.fire('presence:batch', { roomId: ROOM, events: [event('join', 12, 'c-g', 'gina')] });
    expect(socket.last('presence:sync').payload).toEqual({ snapshot: 'page', pageSize: 2 });
    socket.reply('presence:sync', {
      ok: true,
      snapshot: page(12, [conn('c-a', 'alice'), conn('c-c', 'carol')], 'c-c', 4),
    });
    await flush();
    expect(events.find(([n]) => n === 'sync')![1]).toMatchObject({ reason: 'gap' });
    expect(channel.members.size).toBe(2);
    // Two pages were loaded before: the channel loads the second again.
    expect(socket.last('presence:members').payload).toEqual({ after: 'c-c', limit: 2 });
    socket.reply('presence:members', { ok: true, page: page(12, [conn('c-e', 'erin'), conn('c-g', 'gina')], 'c-g', 4) });
    await flush();
    expect(channel.members.connections().map((c) => c.connId)).toEqual(['c-a', 'c-c', 'c-e', 'c-g']);
    expect(socket.pending('presence:members')).toHaveLength(0);
  });

  it('drops a page that comes back after a sync replaced the view', async () => {
    const { socket, channel } = await pagedJoin();
    const more = channel.loadMore();
    await flush();
    socket.fire('presence:resync', { roomId: ROOM, seq: 20 });
    socket.reply('presence:sync', { ok: true, snapshot: page(20, [conn('c-a', 'alice'), conn('c-x', 'xena')], 'c-x', 6) });
    await flush();
    const stale = socket.all('presence:members')[0]!;
    stale.acked = true;
    stale.ack!({ ok: true, page: page(10, [conn('c-c', 'carol'), conn('c-d', 'dave')], 'c-d', 5) });
    expect(await more).toBeNull();
    await flush();
    expect(channel.members.has('c-c')).toBe(false);
    // loadMore asked for a second page: it is loaded again from the new view.
    expect(socket.last('presence:members').payload).toEqual({ after: 'c-x', limit: 2 });
  });

  it('rejects loadMore before the join', async () => {
    const { client } = setup();
    const channel = client.presence(ROOM, { userId: 'alice', snapshot: 'page' });
    await expect(channel.loadMore()).rejects.toMatchObject({ code: 'not_joined' });
  });
});

describe('truncated full snapshot', () => {
  it('pages on by itself until complete', async () => {
    const { socket, channel, join } = await start({ pageSize: 2 });
    expect(socket.last('presence:join').payload).toEqual({ roomId: ROOM, userId: 'alice' });
    socket.reply('presence:join', joinAck('c-a', 1, { ...page(7, [conn('c-a', 'alice'), conn('c-b', 'bob')], 'c-b', 4), truncated: true }));
    const result = await join;
    expect(result.snapshot.truncated).toBe(true);
    expect(channel.complete).toBe(false);
    expect(channel.count).toEqual({ connections: 4, members: 4 });
    socket.push(event('leave', 8, 'c-c', 'carol', { count: { connections: 3, members: 3 } }));
    expect(socket.last('presence:members').payload).toEqual({ after: 'c-b', limit: 2 });
    socket.reply('presence:members', { ok: true, page: page(7, [conn('c-c', 'carol'), conn('c-d', 'dave')], null, 4) });
    await flush();
    expect(channel.complete).toBe(true);
    expect(channel.members.connections().map((c) => c.connId)).toEqual(['c-a', 'c-b', 'c-d']);
    expect(channel.count).toEqual({ connections: 3, members: 3 });
  });

  it('tries a failed page again later', async () => {
    const { socket, channel, events, join } = await start({ ackTimeoutMs: 1000 });
    socket.reply('presence:join', joinAck('c-a', 1, { ...page(7, [conn('c-a', 'alice')], 'c-a', 2), truncated: true }));
    await join;
    socket.reply('presence:members', { ok: false, error: { code: 'unavailable', message: 'redis' } });
    await flush();
    expect(events.find(([n]) => n === 'error')![1]).toMatchObject({ code: 'unavailable' });
    await tick(2000);
    socket.reply('presence:members', { ok: true, page: page(7, [conn('c-b', 'bob')], null, 2) });
    await flush();
    expect(channel.complete).toBe(true);
    expect(channel.members.size).toBe(2);
  });
});
