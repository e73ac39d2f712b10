// Large rooms (protocol revision 3) against the real Go server: counts, batched events,
// member pages and a capped full snapshot.
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { RealtimeClient, type PresenceChannel } from '../../src/index.js';
import { SERVER_ENV, startServer, type RunningServer } from '../support/server.js';
import { unique, waitFor as waitWithin } from '../support/wait.js';

const clients: RealtimeClient[] = [];

afterEach(() => {
  for (const c of clients.splice(0)) c.disconnect();
});

const room = unique;

/** waitFor allows 15 s: a room of a hundred members fills more slowly on a busy machine. */
function waitFor<T>(what: string, check: () => T | undefined | null | false): Promise<T> {
  return waitWithin(what, check, 15_000);
}

function client(url: string): RealtimeClient {
  const c = new RealtimeClient(url, { transports: ['websocket'], ackTimeoutMs: 10_000 });
  clients.push(c);
  return c;
}

/** crowd joins `n` members (user-0 ... user-n-1) in `roomId`, some at a time, with events none. */
async function crowd(url: string, roomId: string, n: number): Promise<PresenceChannel[]> {
  const channels: PresenceChannel[] = [];
  for (let i = 0; i < n; i += 20) {
    const batch: PresenceChannel[] = [];
    for (let j = i; j < Math.min(n, i + 20); j++) {
      batch.push(client(url).presence(roomId, { userId: `user-${j}`, state: { n: j }, events: 'none' }));
    }
    await Promise.all(batch.map((ch) => ch.join()));
    channels.push(...batch);
  }
  return channels;
}

describe('a room of 120', () => {
  const url = inject('serverUrl');

  it('a count member follows the size; a pager gets every member exactly once, with events merged', async () => {
    const roomId = room('big');
    const members = await crowd(url, roomId, 120);

    const counter = client(url).presence(roomId, { userId: 'counter', events: 'count' });
    const counted = await counter.join();
    expect(counted.snapshot.connections).toEqual([]);
    expect(counted.snapshot.count).toEqual({ connections: 121, members: 121 });
    expect(counter.count).toEqual({ connections: 121, members: 121 });
    expect(counter.members.size).toBe(0);

    const pager = client(url).presence(roomId, { userId: 'pager', events: 'batched', snapshot: 'page', pageSize: 50 });
    const first = await pager.join();
    expect(first.snapshot.connections).toHaveLength(50);
    expect(first.snapshot.next).toEqual(expect.any(String));
    expect(pager.complete).toBe(false);
    await waitFor('the counter to see the pager', () => counter.count.connections === 122);

    // Page on while the room changes: one member updates, one leaves, one joins.
    const seen: string[] = first.snapshot.connections.map((c) => c.connId);
    const second = await pager.loadMore();
    seen.push(...second!.connections.map((c) => c.connId));
    await members[0]!.setState({ n: 'updated' });
    const leaver = members[119]!;
    const leaverId = leaver.connId!;
    expect(await leaver.leave()).toEqual({ removed: true });
    const late = await client(url).presence(roomId, { userId: 'late', events: 'none' }).join();
    for (;;) {
      const page = await pager.loadMore();
      if (!page) break;
      seen.push(...page.connections.map((c) => c.connId));
      if (page.next === null) break;
    }
    expect(pager.complete).toBe(true);
    // Every connection present throughout appears exactly once in the pages.
    expect(new Set(seen).size).toBe(seen.length);
    const stayed = [...members.slice(0, 119).map((m) => m.connId!), counter.connId!, pager.connId!];
    for (const id of stayed) expect(seen).toContain(id);

    // The merged view: the pages and the events after them.
    // A page read after the late join may list it before the tick's batch with the leave and
    // the join arrives: wait for the events themselves, up to the late join's seq.
    await waitFor('the pager to apply the events through the late join', () => pager.seq >= late.snapshot.seq);
    expect(pager.members.has(late.self.connId)).toBe(true);
    expect(pager.members.has(leaverId)).toBe(false);
    expect(pager.members.get(members[0]!.connId!)!.state).toEqual({ n: 'updated' });
    expect(pager.members.size).toBe(122);
    expect(pager.members.connections().map((c) => c.connId).sort()).toEqual([...stayed, late.self.connId].sort());
    expect(pager.count).toEqual({ connections: 122, members: 122 });
    await waitFor('the counter to settle', () => counter.count.connections === 122 && counter.count);
    expect(counter.members.size).toBe(0);
  });

  it('a batched member sees events in order, as an each member does', async () => {
    const roomId = room('batched');
    const each = client(url).presence(roomId, { userId: 'each' });
    const batched = client(url).presence(roomId, { userId: 'batched', events: 'batched' });
    await each.join();
    await batched.join();
    const seqs: number[] = [];
    batched.on('join', (e) => seqs.push(e.seq));
    batched.on('leave', (e) => seqs.push(e.seq));
    const members = await crowd(url, roomId, 30);
    await Promise.all(members.slice(0, 10).map((m) => m.leave()));
    await waitFor('the batched member to catch up', () => batched.seq === each.seq && batched.members.size === 22);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(seqs).toHaveLength(40);
    expect(batched.members.connections().map((c) => c.connId).sort()).toEqual(
      each.members.connections().map((c) => c.connId).sort(),
    );
  });
});

describe('a server that caps full snapshots', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer(inject('serverBinary'), { ...SERVER_ENV, PRESENCE_MAX_SNAPSHOT: '25' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('a default member gets a truncated snapshot and pages on to the whole room', async () => {
    const roomId = room('capped');
    const members = await crowd(server.url, roomId, 60);
    const viewer = client(server.url).presence(roomId, { userId: 'viewer' });
    const joined = await viewer.join();
    expect(joined.snapshot.truncated).toBe(true);
    expect(joined.snapshot.connections).toHaveLength(25);
    await waitFor('the viewer to page on', () => viewer.complete);
    expect(viewer.members.size).toBe(61);
    expect(viewer.members.connections().map((c) => c.connId).sort()).toEqual(
      [...members.map((m) => m.connId!), viewer.connId!].sort(),
    );
  });
});
