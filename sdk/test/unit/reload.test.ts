// Page reloads: the channel keeps its connection in sessionStorage, and the next page of
// the tab resumes it unless another page (the original of a duplicated tab) still holds
// it. Node has no sessionStorage: this file installs a Map-backed one, and a window-like
// pagehide target. Pages talk over Node's real BroadcastChannel.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { PresenceChannelOptions } from '../../src/index.js';
import { conn, event, flush, joinAck, setup, snapshot, useFakeTimers, type FakeSocket } from './fake-socket.js';

const ROOM = 'room-1';
const URL = 'http://server.test';
const KEY = `rtm-sdk:presence:${JSON.stringify([URL, ROOM])}`;

class MemoryStorage {
  readonly data = new Map<string, string>();
  getItem(k: string): string | null {
    return this.data.get(k) ?? null;
  }
  setItem(k: string, v: string): void {
    this.data.set(k, String(v));
  }
  removeItem(k: string): void {
    this.data.delete(k);
  }
}

let storage: MemoryStorage;
let win: EventTarget;
const g = globalThis as Record<string, unknown>;
const others: BroadcastChannel[] = [];

beforeEach(() => {
  useFakeTimers();
  storage = new MemoryStorage();
  win = new EventTarget();
  g.sessionStorage = storage;
  g.addEventListener = win.addEventListener.bind(win);
  g.removeEventListener = win.removeEventListener.bind(win);
});
afterEach(() => {
  vi.useRealTimers();
  delete g.sessionStorage;
  delete g.addEventListener;
  delete g.removeEventListener;
  for (const bc of others.splice(0)) bc.close();
});

function stored(): any {
  const raw = storage.getItem(KEY);
  return raw ? JSON.parse(raw) : null;
}

/** page opens a client + channel as a freshly loaded page would, connected. */
async function page(options: Partial<PresenceChannelOptions> = {}) {
  const { client, socket } = setup();
  const c = client.connect();
  socket.connect();
  await c;
  const channel = client.presence(ROOM, { userId: 'alice', state: { status: 'available' }, ...options });
  return { client, socket, channel };
}

/** joinedPage is a page joined as alice with connection `connId`. */
async function joinedPage(connId: string, options: Partial<PresenceChannelOptions> = {}) {
  const p = await page(options);
  const join = p.channel.join();
  await settleProbe(p.socket);
  p.socket.reply('presence:join', joinAck(connId, 1, snapshot(ROOM, 2, [conn('c-b', 'bob'), conn(connId, 'alice', { status: 'available' })])));
  await join;
  return p;
}

/** settleProbe lets a reload probe finish (no answer within its 250 ms) if one runs. */
async function settleProbe(socket: FakeSocket): Promise<void> {
  await flush();
  if (socket.all('presence:join').length > 0) return;
  await vi.advanceTimersByTimeAsync(250);
  await flush();
}

/** unload ends a page as a reload or a tab close does: pagehide, then the socket is gone. */
function unload(socket: FakeSocket): void {
  win.dispatchEvent(new Event('pagehide'));
  socket.drop('transport close');
}

/** otherTab answers probes for `connId` as a page that holds it would. */
function otherTab(connId: string): BroadcastChannel {
  const bc = new BroadcastChannel('rtm-sdk:connections');
  others.push(bc);
  bc.onmessage = (e: MessageEvent) => {
    if (e.data?.t === 'who' && e.data.connId === connId) bc.postMessage({ t: 'mine', id: e.data.id, connId });
  };
  return bc;
}

/** waitReal waits (on real I/O, with fake timers installed) until `check` holds. */
async function waitReal(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (check()) return;
    await new Promise<void>((r) => setImmediate(r));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('the stored connection', () => {
  it('is written on join, on every epoch or state change and on pagehide, and removed on leave', async () => {
    const { socket, channel } = await joinedPage('c-1');
    expect(stored()).toEqual({ roomId: ROOM, userId: 'alice', connId: 'c-1', epoch: 1, state: { status: 'available' } });

    const p = channel.setState({ status: 'busy' });
    await flush();
    socket.reply('presence:heartbeat', { ok: true, epoch: 2, changed: true });
    await p;
    expect(stored()).toMatchObject({ epoch: 2, state: { status: 'busy' } });

    socket.push(event('update', 3, 'c-1', 'alice', { state: { status: 'busy', n: 1 }, epoch: 3 }));
    expect(stored()).toMatchObject({ epoch: 3, state: { status: 'busy', n: 1 } });

    // A patch queued while reconnecting is part of what a reload carries.
    socket.drop();
    await channel.setState({ n: 2 });
    expect(stored()).toMatchObject({ connId: 'c-1', epoch: 3, state: { status: 'busy', n: 2 } });

    storage.removeItem(KEY);
    win.dispatchEvent(new Event('pagehide'));
    expect(stored()).toMatchObject({ connId: 'c-1', epoch: 3 });

    socket.connect();
    socket.reply('presence:join', joinAck('c-1', 4, snapshot(ROOM, 4, [conn('c-1', 'alice', { status: 'busy', n: 2 }, 4)])));
    await flush();
    expect(stored()).toMatchObject({ epoch: 4 });
    const left = channel.leave();
    socket.reply('presence:leave', { ok: true, removed: true });
    await left;
    expect(stored()).toBeNull();
    win.dispatchEvent(new Event('pagehide'));
    expect(stored()).toBeNull();
  });

  it('follows the epoch of a plain heartbeat acknowledgement', async () => {
    const { socket } = await joinedPage('c-12', { heartbeatIntervalMs: 1000 });
    await vi.advanceTimersByTimeAsync(1000);
    socket.reply('presence:heartbeat', { ok: true, epoch: 5, changed: false });
    await flush();
    expect(stored()).toMatchObject({ connId: 'c-12', epoch: 5 });
  });

  it('is not kept with resumeOnReload: false', async () => {
    await joinedPage('c-2', { resumeOnReload: false });
    win.dispatchEvent(new Event('pagehide'));
    expect(stored()).toBeNull();
  });
});

describe('a reload', () => {
  it('resumes the stored connection with its state: no join, no update for anyone', async () => {
    const first = await joinedPage('c-3');
    const p = first.channel.setState({ status: 'busy' });
    await flush();
    first.socket.reply('presence:heartbeat', { ok: true, epoch: 2, changed: true });
    await p;
    unload(first.socket);

    // The new page sets itself up exactly as the first one did (default state).
    const { socket, channel } = await page();
    const syncs: unknown[] = [];
    channel.on('sync', (s) => syncs.push(s));
    const join = channel.join();
    await flush();
    expect(socket.all('presence:join')).toHaveLength(0); // the probe runs first
    await settleProbe(socket);
    expect(socket.last('presence:join').payload).toEqual({
      roomId: ROOM,
      userId: 'alice',
      resume: { connId: 'c-3', epoch: 2 },
      state: { status: 'busy' },
    });
    socket.reply('presence:join', joinAck('c-3', 3, snapshot(ROOM, 5, [conn('c-b', 'bob'), conn('c-3', 'alice', { status: 'busy' }, 3)])));
    await expect(join).resolves.toMatchObject({ resumed: true, self: { connId: 'c-3', epoch: 3 } });
    expect(syncs).toEqual([expect.objectContaining({ reason: 'resume' })]);
    expect(channel.state).toEqual({ status: 'busy' });
    await flush();
    expect(socket.all('presence:heartbeat')).toHaveLength(0); // no patch to restore anything
    expect(stored()).toMatchObject({ connId: 'c-3', epoch: 3 });
  });

  it('after the grace, joins fresh with the kept state in the join itself', async () => {
    const first = await joinedPage('c-4');
    unload(first.socket);
    const { socket, channel } = await page({ state: { status: 'default' } });
    const join = channel.join();
    await settleProbe(socket);
    expect(socket.last('presence:join').payload).toMatchObject({ resume: { connId: 'c-4' }, state: { status: 'available' } });
    // The server no longer has c-4: a fresh connection with the state of the join.
    socket.reply('presence:join', joinAck('c-5', 1, snapshot(ROOM, 9, [conn('c-5', 'alice', { status: 'available' })])));
    await expect(join).resolves.toMatchObject({ resumed: false, self: { connId: 'c-5' } });
    await flush();
    expect(socket.all('presence:heartbeat')).toHaveLength(0);
    expect(stored()).toMatchObject({ connId: 'c-5', epoch: 1 });
  });

  it('waits for the socket when the probe ends first', async () => {
    const first = await joinedPage('c-6');
    unload(first.socket);
    const { client, socket } = setup();
    const channel = client.presence(ROOM, { userId: 'alice' });
    const join = channel.join();
    expect(socket.opened).toBe(1);
    await vi.advanceTimersByTimeAsync(250);
    await flush();
    expect(socket.all('presence:join')).toHaveLength(0);
    socket.connect();
    expect(socket.last('presence:join').payload.resume).toEqual({ connId: 'c-6', epoch: 1 });
    socket.reply('presence:join', joinAck('c-6', 2, snapshot(ROOM, 2, [conn('c-6', 'alice')])));
    await expect(join).resolves.toMatchObject({ resumed: true });
  });

  it('ignores a record of another user', async () => {
    const first = await joinedPage('c-7');
    unload(first.socket);
    const { socket, channel } = await page({ userId: 'mallory' });
    void channel.join();
    await flush();
    expect(socket.last('presence:join').payload).toEqual({ roomId: ROOM, userId: 'mallory', state: { status: 'available' } });
  });

  it('only applies to the first join of a page', async () => {
    const first = await joinedPage('c-8');
    unload(first.socket);
    const { socket, channel } = await page();
    const join = channel.join();
    await settleProbe(socket);
    socket.reply('presence:join', joinAck('c-8', 2, snapshot(ROOM, 2, [conn('c-8', 'alice')])));
    await join;
    const left = channel.leave();
    socket.reply('presence:leave', { ok: true, removed: true });
    await left;
    void channel.join();
    await flush();
    expect(socket.last('presence:join').payload.resume).toBeUndefined();
  });
});

describe('a duplicated tab', () => {
  it('joins fresh when another tab answers that it holds the connection', async () => {
    storage.setItem(KEY, JSON.stringify({ roomId: ROOM, userId: 'alice', connId: 'c-orig', epoch: 4, state: { status: 'busy' } }));
    otherTab('c-orig');
    const { socket, channel } = await page();
    const join = channel.join();
    await waitReal('the fresh join', () => socket.all('presence:join').length > 0);
    expect(socket.last('presence:join').payload).toEqual({ roomId: ROOM, userId: 'alice', state: { status: 'available' } });
    socket.reply('presence:join', joinAck('c-dup', 1, snapshot(ROOM, 3, [conn('c-orig', 'alice'), conn('c-dup', 'alice')])));
    await expect(join).resolves.toMatchObject({ resumed: false, self: { connId: 'c-dup' } });
    expect(stored()).toMatchObject({ connId: 'c-dup' }); // the copy is the duplicate's own now
  });

  it('in the same page (a second client), joins fresh without asking anyone', async () => {
    const first = await joinedPage('c-9');
    const { socket, channel } = await page();
    void channel.join();
    await flush();
    expect(socket.last('presence:join').payload.resume).toBeUndefined();
    expect(first.channel.connId).toBe('c-9');
  });

  it('is told by the holder page that the connection is in use', async () => {
    await joinedPage('c-10');
    const asker = new BroadcastChannel('rtm-sdk:connections');
    others.push(asker);
    const answers: unknown[] = [];
    asker.onmessage = (e: MessageEvent) => answers.push(e.data);
    asker.postMessage({ t: 'who', id: 'q1', connId: 'c-unknown' });
    asker.postMessage({ t: 'who', id: 'q2', connId: 'c-10' });
    await waitReal('the answer', () => answers.length > 0);
    expect(answers).toEqual([{ t: 'mine', id: 'q2', connId: 'c-10' }]);
  });

  it('stops answering once the holder left', async () => {
    const { socket, channel } = await joinedPage('c-11');
    const left = channel.leave();
    socket.reply('presence:leave', { ok: true, removed: true });
    await left;
    storage.setItem(KEY, JSON.stringify({ roomId: ROOM, userId: 'alice', connId: 'c-11', epoch: 1, state: {} }));
    const next = await page();
    void next.channel.join();
    await settleProbe(next.socket);
    expect(next.socket.last('presence:join').payload.resume).toEqual({ connId: 'c-11', epoch: 1 });
  });
});

describe('a reload with a server history (revision 3)', () => {
  it('keeps the last position and asks for what the reload missed, then takes a snapshot for its view', async () => {
    const first = await page();
    const join1 = first.channel.join();
    await settleProbe(first.socket);
    first.socket.reply('presence:join', {
      ...joinAck('c-h1', 1, snapshot(ROOM, 2, [conn('c-b', 'bob'), conn('c-h1', 'alice', { status: 'available' })])),
      history: { epoch: '77' },
    });
    await join1;
    first.socket.fire('chat:message', { id: 'm', roomId: ROOM, userId: 'bob', connId: 'c-b', text: 'hi', ts: 1, seq: 2, sub: 1 });
    expect(stored()).toMatchObject({ connId: 'c-h1', seq: 2, sub: 1, historyEpoch: '77' });
    unload(first.socket);

    const { client, socket, channel } = await page();
    const texts: string[] = [];
    client.on('chat:message', (m) => texts.push(m.text));
    const syncs: Array<{ reason: string }> = [];
    channel.on('sync', (s) => syncs.push(s));
    const join = channel.join();
    await settleProbe(socket);
    expect(socket.last('presence:join').payload).toMatchObject({ resume: { connId: 'c-h1' }, since: { seq: 2, sub: 1, epoch: '77' } });
    socket.fire('chat:message', { id: 'm2', roomId: ROOM, userId: 'bob', connId: 'c-b', text: 'missed', ts: 2, seq: 2, sub: 2 });
    socket.push(event('join', 3, 'c-c', 'carol'));
    socket.reply('presence:join', {
      ok: true,
      self: { connId: 'c-h1', epoch: 2 },
      snapshot: { roomId: ROOM, seq: 3, count: { connections: 3, members: 3 } },
      history: { epoch: '77' },
      recovered: true,
      replayed: 2,
    });
    await expect(join).resolves.toMatchObject({ resumed: true, recovery: { recovered: true, replayed: 2 } });
    expect(texts).toEqual(['missed']);
    // The new page has no view to apply the replayed presence events to: it syncs.
    socket.reply('presence:sync', {
      ok: true,
      snapshot: snapshot(ROOM, 3, [conn('c-b', 'bob'), conn('c-h1', 'alice', { status: 'available' }, 2), conn('c-c', 'carol')]),
    });
    await flush();
    expect(channel.members.connections().map((c) => c.connId)).toEqual(['c-b', 'c-h1', 'c-c']);
    expect(syncs.map((s) => s.reason)).toEqual(['resume']);
    expect(stored()).toMatchObject({ seq: 3, sub: 0, historyEpoch: '77' });
  });
});
