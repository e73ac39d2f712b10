// The bundle as an app outside this repository uses it: a bare page loads the <script>
// bundle (global RealtimeSDK) and, on every load, does `new RealtimeClient(url)`,
// `client.presence(room, { userId, state })`, `join()`. Two such pages on two server nodes
// sharing one Redis: Unicode state, a cross-node patch, a dropped transport, a reload
// within the grace (the other page sees nothing, the same connId comes back), a closed
// page (one leave).
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { launchChromium } from '../support/browser.js';
import { SDK_DIR, SERVER_ENV, startRedis, startServer, type RunningRedis, type RunningServer } from '../support/server.js';

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>external app</title>
<script src="/sdk/realtime-sdk.js"></script>
<script>
  const p = new URLSearchParams(location.search);
  const client = new RealtimeSDK.RealtimeClient(p.get('server'));
  const channel = client.presence(p.get('room'), { userId: p.get('user'), state: JSON.parse(p.get('state')) });
  window.__events = [];
  for (const type of ['join', 'update', 'leave']) {
    channel.on(type, (e) => __events.push({ type, userId: e.userId, connId: e.connId, reason: e.reason, state: e.state }));
  }
  channel.on('sync', (s) => __events.push({ type: 'sync', reason: s.reason }));
  window.__client = client;
  window.__channel = channel;
  window.__joined = channel.join().then((r) => r.self.connId);
</script>`;

let redis: RunningRedis | undefined;
const nodes: RunningServer[] = [];
let app: Server | undefined;
let appUrl = '';
let browser: Browser | undefined;
const pageErrors: string[] = [];

beforeAll(async () => {
  redis = await startRedis();
  const binary = inject('serverBinary');
  for (let i = 0; i < 2; i++) nodes.push(await startServer(binary, { ...SERVER_ENV, REDIS_URL: redis.url }));
  // The app's own origin: the page and the bundle, from a loopback HTTP server.
  app = createServer((req, res) => {
    if (req.url?.startsWith('/sdk/realtime-sdk.js')) {
      res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(readFileSync(join(SDK_DIR, 'dist', 'realtime-sdk.js')));
    } else {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(PAGE);
    }
  });
  await new Promise<void>((resolve) => app!.listen(0, '127.0.0.1', resolve));
  appUrl = `http://127.0.0.1:${(app.address() as { port: number }).port}`;
  browser = await launchChromium();
}, 60_000);
afterAll(async () => {
  await browser?.close();
  app?.close();
  for (const n of nodes) await n.stop();
  redis?.stop();
});

/** openApp loads the bare app page in a window of its own, on `node`. */
async function openApp(node: RunningServer, room: string, user: string, state: object): Promise<Page> {
  const context = await browser!.newContext();
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(`${user}: ${err.message}`));
  const q = new URLSearchParams({ server: node.url, room, user, state: JSON.stringify(state) });
  await page.goto(`${appUrl}/app.html?${q}`);
  return page;
}

const joinedConn = (page: Page) => page.evaluate(() => (window as any).__joined as Promise<string>);
const events = (page: Page) => page.evaluate(() => (window as any).__events as Array<Record<string, any>>);

it('two bare pages on two nodes: Unicode, a cross-node patch, a drop, a reload within the grace, a close', async () => {
  const room = `ext-${Date.now().toString(36)} ✓`;
  const zoe = 'Zoë 🚀';
  const note = '会議中 — naïve ✓ 🇫🇷';
  const a = await openApp(nodes[0]!, room, zoe, { note, status: 'available' });
  const aConn = await joinedConn(a);
  const b = await openApp(nodes[1]!, room, 'bob', {});
  await joinedConn(b);

  // Unicode state across nodes, then a patch made on node 1 seen on node 2.
  await b.waitForFunction(({ c, n }) => (window as any).__channel.members.get(c)?.state.note === n, { c: aConn, n: note });
  expect(await b.evaluate((c) => (window as any).__channel.members.get(c).userId, aConn)).toBe(zoe);
  await a.evaluate(() => (window as any).__channel.setState({ status: 'busy 🔴' }));
  await b.waitForFunction((c) => (window as any).__channel.members.get(c)?.state.status === 'busy 🔴', aConn);
  const seenByB = (await events(b)).length;

  // A dropped transport resumes the same connection.
  await a.evaluate(() => (window as any).__client.dropTransport());
  await a.waitForFunction(() => (window as any).__events.some((e: any) => e.type === 'sync' && e.reason === 'resume'));
  expect(await a.evaluate(() => (window as any).__channel.connId)).toBe(aConn);

  // A reload within the grace: the page sets itself up again the same way.
  await a.reload();
  expect(await joinedConn(a)).toBe(aConn);
  expect(await a.evaluate(() => (window as any).__channel.state)).toEqual({ note, status: 'busy 🔴' });
  expect(await events(a)).toEqual([{ type: 'sync', reason: 'resume' }]);
  // The resumed connection is live across nodes.
  await a.evaluate(() => (window as any).__channel.setState({ status: 'back' }));
  await b.waitForFunction((c) => (window as any).__channel.members.get(c)?.state.status === 'back', aConn);
  expect((await events(b)).slice(seenByB)).toEqual([{ type: 'update', userId: zoe, connId: aConn, state: { note, status: 'back' } }]);

  // A closed page: one leave, after the grace.
  await a.close();
  await b.waitForFunction((c) => (window as any).__events.some((e: any) => e.type === 'leave' && e.connId === c), aConn);
  expect((await events(b)).slice(seenByB + 1)).toEqual([
    expect.objectContaining({ type: 'leave', userId: zoe, connId: aConn, reason: 'disconnect' }),
  ]);
  expect(pageErrors).toEqual([]);
});
