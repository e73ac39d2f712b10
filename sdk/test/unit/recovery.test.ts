// Recovery (protocol revision 3): a channel that comes back asks for what it missed with
// `since`, applies what the server replays, and says how it went.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { PresenceRecovery } from '../../src/index.js';
import { conn, event, flush, joinAck, setup, snapshot, useFakeTimers } from './fake-socket.js';

const ROOM = 'room-1';
const EPOCH = '1733450000123456';

beforeEach(() => useFakeTimers());
afterEach(() => vi.useRealTimers());

/** joined returns a channel joined as alice (c-a) with bob (c-b), on a server keeping histories. */
async function joined() {
  const { client, socket } = setup();
  const p = client.connect();
  socket.connect();
  await p;
  const channel = client.presence(ROOM, { userId: 'alice', resumeOnReload: false });
  const recoveries: PresenceRecovery[] = [];
  channel.on('recover', (r) => recoveries.push(r));
  const join = channel.join();
  socket.reply('presence:join', {
    ...joinAck('c-a', 1, snapshot(ROOM, 2, [conn('c-b', 'bob'), conn('c-a', 'alice')])),
    history: { epoch: EPOCH },
  });
  await join;
  return { client, socket, channel, recoveries };
}

function chat(seq: number, sub: number, text: string) {
  return { id: `m-${seq}-${sub}`, roomId: ROOM, userId: 'bob', connId: 'c-b', text, ts: 1, seq, sub };
}

describe('recovery', () => {
  it('resumes with the last position seen, chat messages included, and applies the replay', async () => {
    const { client, socket, channel, recoveries } = await joined();
    const texts: string[] = [];
    client.on('chat:message', (m) => texts.push(m.text));
    socket.push(event('update', 3, 'c-b', 'bob', { state: { n: 1 } }));
    socket.fire('chat:message', chat(3, 1, 'hi'));
    socket.drop();
    socket.connect();
    expect(socket.last('presence:join').payload.since).toEqual({ seq: 3, sub: 1, epoch: EPOCH });

    // The server replays what the channel missed before its acknowledgement.
    socket.fire('chat:message', chat(3, 2, 'missed'));
    socket.push(event('join', 4, 'c-c', 'carol'));
    socket.push(event('update', 5, 'c-b', 'bob', { state: { n: 2 } }));
    socket.reply('presence:join', {
      ok: true,
      self: { connId: 'c-a', epoch: 2 },
      snapshot: { roomId: ROOM, seq: 5, count: { connections: 3, members: 3 } },
      history: { epoch: EPOCH },
      recovered: true,
      replayed: 3,
    });
    await flush();
    expect(channel.status).toBe('joined');
    expect(channel.seq).toBe(5);
    expect(channel.members.connections().map((c) => c.connId)).toEqual(['c-b', 'c-a', 'c-c']);
    expect(channel.members.get('c-b')?.state).toEqual({ n: 2 });
    expect(texts).toEqual(['hi', 'missed']);
    expect(channel.recovery).toEqual({ recovered: true, replayed: 3 });
    expect(recoveries).toEqual([{ recovered: true, replayed: 3 }]);
  });

  it('takes the fresh snapshot when the history does not reach back', async () => {
    const { socket, channel, recoveries } = await joined();
    socket.drop();
    socket.connect();
    expect(socket.last('presence:join').payload.since).toEqual({ seq: 2, epoch: EPOCH });
    socket.reply('presence:join', {
      ...joinAck('c-a', 2, snapshot(ROOM, 40, [conn('c-d', 'dan'), conn('c-a', 'alice', {}, 2)])),
      history: { epoch: '99' },
      recovered: false,
    });
    await flush();
    expect(channel.seq).toBe(40);
    expect(channel.members.connections().map((c) => c.connId)).toEqual(['c-d', 'c-a']);
    expect(recoveries).toEqual([{ recovered: false, replayed: 0 }]);
    // The next reconnect asks from the new history.
    socket.drop();
    socket.connect();
    expect(socket.last('presence:join').payload.since).toEqual({ seq: 40, epoch: '99' });
  });

  it('asks for what a gap in seq missed with presence:sync since', async () => {
    const { socket, channel } = await joined();
    socket.push(event('leave', 5, 'c-b', 'bob'));
    await flush();
    expect(socket.last('presence:sync').payload).toEqual({ since: { seq: 2, epoch: EPOCH } });
    socket.push(event('join', 3, 'c-c', 'carol'));
    socket.push(event('update', 4, 'c-c', 'carol', { state: { n: 1 } }));
    socket.reply('presence:sync', {
      ok: true,
      snapshot: { roomId: ROOM, seq: 5, count: { connections: 2, members: 2 } },
      recovered: true,
      replayed: 3,
    });
    await flush();
    expect(channel.seq).toBe(5);
    expect(channel.members.connections().map((c) => c.connId)).toEqual(['c-a', 'c-c']);
    expect(channel.recovery).toEqual({ recovered: true, replayed: 3 });
  });

  it('restores the full state on a fresh connection that recovered', async () => {
    const { client, socket } = setup();
    const p = client.connect();
    socket.connect();
    await p;
    const channel = client.presence(ROOM, { userId: 'alice', state: { mood: 'ok' }, resumeOnReload: false });
    const join = channel.join();
    socket.reply('presence:join', {
      ...joinAck('c-a', 1, snapshot(ROOM, 1, [conn('c-a', 'alice', { mood: 'ok' })])),
      history: { epoch: EPOCH },
    });
    await join;
    socket.drop();
    void channel.setState({ n: 1 }); // queued: the resume carries it
    socket.connect();
    expect(socket.last('presence:join').payload).toMatchObject({ state: { n: 1 }, since: { seq: 1, epoch: EPOCH } });
    // The connection was gone: a fresh one, joined with the patch alone.
    socket.push(event('leave', 2, 'c-a', 'alice', { reason: 'disconnect' }));
    socket.push(event('join', 3, 'c-new', 'alice', { state: { n: 1 } }));
    socket.reply('presence:join', {
      ok: true,
      self: { connId: 'c-new', epoch: 1 },
      snapshot: { roomId: ROOM, seq: 3, count: { connections: 1, members: 1 } },
      history: { epoch: EPOCH },
      recovered: true,
      replayed: 2,
    });
    await flush();
    expect(channel.members.connections().map((c) => c.connId)).toEqual(['c-new']);
    expect(socket.last('presence:heartbeat').payload).toEqual({ epoch: 1, patchState: { mood: 'ok' } });
  });

  it('sends no since to a server without histories', async () => {
    const { client, socket } = setup();
    const p = client.connect();
    socket.connect();
    await p;
    const channel = client.presence(ROOM, { userId: 'alice', resumeOnReload: false });
    const join = channel.join();
    socket.reply('presence:join', joinAck('c-a', 1, snapshot(ROOM, 2, [conn('c-a', 'alice')])));
    await join;
    socket.drop();
    socket.connect();
    expect(socket.last('presence:join').payload.since).toBeUndefined();
    expect(channel.recovery).toBeNull();
  });
});
