// Background tabs: the heartbeat timer runs on a Worker timer where a Worker exists. Node
// has none, so this file installs a fake one that runs its timers on the (fake) global
// timers and counts what it was asked to do.
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { conn, flush, joinAck, setup, snapshot, useFakeTimers } from './fake-socket.js';

const posted: unknown[] = [];

class FakeWorker {
  onmessage: ((e: { data: number }) => void) | null = null;
  onerror: (() => void) | null = null;
  private readonly timers = new Map<number, ReturnType<typeof setTimeout>>();

  constructor(readonly url: string) {}

  postMessage(msg: [number, number, number?]): void {
    posted.push(msg);
    const [op, id, ms] = msg;
    if (op === 1) {
      this.timers.set(
        id,
        setTimeout(() => this.onmessage?.({ data: id }), ms),
      );
    } else {
      clearTimeout(this.timers.get(id));
    }
  }
}

beforeAll(() => {
  (globalThis as { Worker?: unknown }).Worker = FakeWorker;
});
afterAll(() => {
  delete (globalThis as { Worker?: unknown }).Worker;
  vi.useRealTimers();
});
beforeEach(() => {
  posted.length = 0;
  useFakeTimers();
});

describe('worker timers', () => {
  it('drive the presence heartbeats', async () => {
    const { client, socket } = setup();
    const c = client.connect();
    socket.connect();
    await c;
    const channel = client.presence('room-1', { userId: 'alice', heartbeatIntervalMs: 1000 });
    const p = channel.join();
    socket.reply('presence:join', joinAck('c-a', 1, snapshot('room-1', 1, [conn('c-a', 'alice')])));
    await p;
    expect(posted).toContainEqual([1, expect.any(Number), 1000]);
    await vi.advanceTimersByTimeAsync(1000);
    await flush();
    expect(socket.all('presence:heartbeat')).toHaveLength(1);
  });
});
