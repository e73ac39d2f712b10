// A hidden tab for longer than the server's reaper lookback stays present: never expired,
// never reconnected.
//
// Headless Chromium reports every page visible and never throttles its timers (there is no
// window to hide it in), so the page emulates a hidden tab: `document.visibilityState` is
// 'hidden' and every main-thread timer (the page's, socket.io-client's, the SDK's) wakes
// only on multiples of ALIGN_MS, twice the lookback: harsher than Chromium's "intensive
// throttling" (one wake-up a minute against the default 60 s lookback). A dedicated
// Worker's timers are not throttled, as in Chromium. A second test turns the Worker timer
// off, to show that the emulation bites: that page is expired.
//
// The server here runs with short intervals (TTL 2 s, lookback 4 s); set RTM_HIDDEN_DEFAULTS=1
// to measure with the server's defaults instead (TTL 30 s, lookback 60 s, heartbeat 10 s,
// timers aligned to 60 s, hidden for 150 s).
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { RealtimeClient, type PresenceEvent } from '../../src/index.js';
import { launchChromium, startDemo, type Demo } from '../support/browser.js';
import { startServer, type RunningServer } from '../support/server.js';

const DEFAULTS = process.env.RTM_HIDDEN_DEFAULTS === '1';
const TTL_MS = DEFAULTS ? 30_000 : 2000;
const LOOKBACK_MS = 2 * TTL_MS;
const REAPER_MS = DEFAULTS ? 3000 : 250;
const HEARTBEAT_MS = DEFAULTS ? 10_000 : 500;
const ALIGN_MS = DEFAULTS ? 60_000 : 2 * LOOKBACK_MS;
const HIDDEN_MS = DEFAULTS ? 150_000 : 2 * LOOKBACK_MS + 2 * REAPER_MS;

let server: RunningServer | undefined;
let demo: Demo | undefined;
let browser: Browser | undefined;
const observers: RealtimeClient[] = [];

beforeAll(async () => {
  server = await startServer(inject('serverBinary'), {
    PRESENCE_TTL_MS: String(TTL_MS),
    PRESENCE_REAPER_LOOKBACK_MS: String(LOOKBACK_MS),
    PRESENCE_REAPER_INTERVAL_MS: String(REAPER_MS),
    PRESENCE_DISCONNECT_GRACE_MS: '1000',
  });
  demo = await startDemo();
  browser = await launchChromium();
}, 60_000);
afterAll(async () => {
  for (const o of observers) o.disconnect();
  await browser?.close();
  demo?.stop();
  await server?.stop();
});

/** emulateHidden runs before the page's scripts: it makes `__setHidden(align)` available. */
function emulateHidden(): void {
  const w = window as any;
  const realSetTimeout = window.setTimeout.bind(window);
  const realSetInterval = window.setInterval.bind(window);
  let align = 0;
  const aligned = (ms: number) => {
    const due = Date.now() + Math.max(0, Number(ms) || 0);
    return Math.ceil(due / align) * align - Date.now();
  };
  w.setTimeout = (fn: any, ms?: number, ...args: any[]) => realSetTimeout(fn, align ? aligned(ms ?? 0) : ms, ...args);
  w.setInterval = (fn: any, ms?: number, ...args: any[]) => realSetInterval(fn, align ? Math.max(ms ?? 0, align) : ms, ...args);
  let state = 'visible';
  Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true, get: () => state });
  Object.defineProperty(Document.prototype, 'hidden', { configurable: true, get: () => state === 'hidden' });
  w.__setHidden = (alignMs: number) => {
    align = alignMs;
    state = alignMs > 0 ? 'hidden' : 'visible';
    document.dispatchEvent(new Event('visibilitychange'));
  };
}

/** joinHidden opens a page, joins `roomId` from it and hides it; it returns the connId. */
async function joinHidden(roomId: string, workerTimers: boolean): Promise<{ page: Page; connId: string }> {
  const context = await browser!.newContext();
  const page = await context.newPage();
  await page.addInitScript(emulateHidden);
  await page.goto(demo!.url);
  const connId = await page.evaluate(
    async ({ url, roomId, heartbeatIntervalMs, workerTimers }) => {
      const w = window as any;
      const client = new w.RealtimeSDK.RealtimeClient(url, { transports: ['websocket'] });
      const channel = client.presence(roomId, { userId: 'hidden', heartbeatIntervalMs, workerTimers });
      const rec = { disconnects: 0, reconnects: 0, syncs: [] as string[], errors: [] as string[], ownLeaves: 0 };
      client.on('disconnect', () => rec.disconnects++);
      client.on('reconnect', () => rec.reconnects++);
      channel.on('sync', (s: any) => rec.syncs.push(s.reason));
      channel.on('error', (e: any) => rec.errors.push(e.code));
      channel.on('leave', (e: any) => {
        if (e.connId === channel.connId) rec.ownLeaves++;
      });
      await channel.join();
      w.__rec = rec;
      w.__channel = channel;
      return channel.connId as string;
    },
    { url: server!.url, roomId, heartbeatIntervalMs: HEARTBEAT_MS, workerTimers },
  );
  await page.evaluate((align) => (window as any).__setHidden(align), ALIGN_MS);
  expect(await page.evaluate(() => document.visibilityState)).toBe('hidden');
  return { page, connId };
}

/** observe joins `roomId` from Node and records what the room does. */
async function observe(roomId: string): Promise<PresenceEvent[]> {
  const client = new RealtimeClient(server!.url, { transports: ['websocket'] });
  observers.push(client);
  const channel = client.presence(roomId, { userId: 'observer', heartbeatIntervalMs: HEARTBEAT_MS });
  const events: PresenceEvent[] = [];
  for (const type of ['join', 'update', 'leave'] as const) channel.on(type, (e) => events.push(e));
  await channel.join();
  return events;
}

async function connection(roomId: string, connId: string): Promise<{ lastSeenMs: number } | undefined> {
  const res = await fetch(`${server!.url}/v1/rooms/${encodeURIComponent(roomId)}/presence`);
  const snap = (await res.json()) as { connections: Array<{ connId: string; lastSeenMs: number }> };
  return snap.connections.find((c) => c.connId === connId);
}

it(
  'a hidden tab for longer than the lookback stays present: never expired, never reconnected',
  async () => {
    const roomId = `hidden-${Date.now().toString(36)}`;
    const events = await observe(roomId);
    const { page, connId } = await joinHidden(roomId, true);
    await expect.poll(() => events.some((e) => e.type === 'join' && e.connId === connId)).toBe(true);
    const seenBeforeHiding = events.length;

    // Checked all along: the connection is there and its last heartbeat is within the TTL.
    const hiddenAt = Date.now();
    let maxAge = 0;
    while (Date.now() - hiddenAt < HIDDEN_MS) {
      const c = await connection(roomId, connId);
      expect(c, `connection ${connId} after ${Date.now() - hiddenAt} ms hidden`).toBeDefined();
      maxAge = Math.max(maxAge, Date.now() - c!.lastSeenMs);
      expect(maxAge).toBeLessThan(TTL_MS);
      await new Promise((r) => setTimeout(r, REAPER_MS));
    }
    const rec = await page.evaluate(() => (window as any).__rec);
    console.log(
      `hidden ${Date.now() - hiddenAt} ms (lookback ${LOOKBACK_MS} ms, main-thread timers aligned to ${ALIGN_MS} ms, ` +
        `heartbeat ${HEARTBEAT_MS} ms): oldest heartbeat seen by the server ${maxAge} ms, ` +
        `disconnects ${rec.disconnects}, reconnects ${rec.reconnects}, syncs ${rec.syncs.join(',')}`,
    );
    expect(rec).toEqual({ disconnects: 0, reconnects: 0, syncs: ['join'], errors: [], ownLeaves: 0 });
    expect(events.slice(seenBeforeHiding)).toEqual([]);

    await page.context().close();
  },
  HIDDEN_MS + 60_000,
);

it(
  'without the Worker timer the same hidden tab is expired (the emulation bites)',
  async () => {
    const roomId = `hidden-main-${Date.now().toString(36)}`;
    const events = await observe(roomId);
    const { page, connId } = await joinHidden(roomId, false);
    await expect
      .poll(() => events.find((e) => e.type === 'leave' && e.connId === connId), { timeout: ALIGN_MS + LOOKBACK_MS, interval: REAPER_MS })
      .toMatchObject({ reason: 'expired' });
    await page.context().close();
  },
  2 * ALIGN_MS + 60_000,
);
