// The demo playground in headless Chromium: two pages, one room, against the real server.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { launchChromium, startDemo, type Demo } from '../support/browser.js';
import { SDK_DIR, SERVER_ENV, startServer } from '../support/server.js';

const serverUrl = inject('serverUrl');
const room = `demo-${Date.now().toString(36)}`;

let demo: Demo | undefined;
let demoUrl = '';
let browser: Browser | undefined;
const pageErrors: string[] = [];

beforeAll(async () => {
  demo = await startDemo();
  demoUrl = demo.url;
  // Each user gets a context of its own (its own window, so that neither page is a
  // hidden background tab, and its own storage).
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  demo?.stop();
});

async function openAs(userId: string): Promise<Page> {
  const context = await browser!.newContext({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(`${userId}: ${err.message}`));
  await page.goto(demoUrl);
  await page.fill('#server-url', serverUrl);
  await page.fill('#room', room);
  await page.fill('#user', userId);
  await page.click('#join');
  await page.waitForSelector(`#members li[data-user="${userId}"]`);
  return page;
}

const member = (userId: string) => `#members li[data-user="${userId}"]`;

it('two pages see each other, a state change, a resumed drop and a leave; screenshot of the demo', async () => {
  const alice = await openAs('alice');
  const bob = await openAs('bob');

  // Each page shows the other member.
  await alice.waitForSelector(member('bob'));
  await bob.waitForSelector(member('alice'));
  await expect.poll(() => alice.textContent('#member-count')).toContain('2 people');
  expect(await alice.getAttribute('#conn-status', 'data-status')).toBe('connected');

  // A state change on one page shows on the other.
  await bob.click('#status-buttons button[data-status="busy"]');
  await alice.waitForSelector(`${member('bob')}[data-status="busy"]`);
  await bob.fill('#note', 'Reviewing the onboarding flow');
  await bob.press('#note', 'Enter');
  await alice.waitForSelector(`${member('bob')} .note:text("Reviewing the onboarding flow")`);
  await alice.fill('#note', 'Sketching the new avatars');
  await alice.press('#note', 'Enter');
  await bob.waitForSelector(`${member('alice')} .note:text("Sketching the new avatars")`);

  // Chat both ways (chat:message).
  await alice.fill('#chat-text', 'Hi Bob! Are the new mocks ready?');
  await alice.press('#chat-text', 'Enter');
  await bob.waitForSelector('#messages li[data-user="alice"]');
  await bob.fill('#chat-text', 'Almost: pushing them in five minutes.');
  await bob.press('#chat-text', 'Enter');
  await alice.waitForSelector('#messages li[data-user="bob"]');
  await alice.waitForTimeout(400); // let the entry animations finish
  // The README's screenshot is refreshed on request (UPDATE_SCREENSHOT=1), so
  // that a test run leaves the checkout as it found it.
  const shot = process.env.UPDATE_SCREENSHOT ? join(SDK_DIR, 'demo', 'screenshot.png') : join(tmpdir(), 'rtm-demo-screenshot.png');
  await alice.screenshot({ path: shot });

  // A dropped connection resumes: the other page sees no leave and no join.
  const bobLogBefore = await bob.$$eval('#log li[data-kind="join"], #log li[data-kind="leave"]', (li) => li.length);
  await alice.click('#drop');
  await alice.waitForSelector('#log li[data-kind="sync"]:has-text("resumed the same connection")');
  await alice.waitForSelector('#conn-status[data-status="connected"]');
  await alice.click('#status-buttons button[data-status="away"]');
  await bob.waitForSelector(`${member('alice')}[data-status="away"]`);
  expect(await bob.$$eval('#log li[data-kind="join"], #log li[data-kind="leave"]', (li) => li.length)).toBe(bobLogBefore);

  // A leave on one page shows on the other.
  await bob.click('#leave');
  await alice.waitForSelector(member('bob'), { state: 'detached' });
  await alice.waitForSelector('#log li[data-kind="leave"]');
  await expect.poll(() => alice.textContent('#member-count')).toContain('1 person');
  const leaves = await alice.$$eval('#log li[data-kind="leave"] .text', (li) => li.map((x) => x.textContent ?? ''));
  expect(leaves).toHaveLength(1);
  expect(leaves[0]).toMatch(/^bob \[[^\]]+\] left \(leave\)  #\d+$/);

  expect(pageErrors).toEqual([]);
});

it('in the page, heartbeats run on a Worker timer and keep the connection fresh', async () => {
  const context = await browser!.newContext();
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(`worker page: ${err.message}`));
  await page.goto(demoUrl);
  const roomId = `${room}-worker`;
  const result = await page.evaluate(
    async ({ url, roomId }) => {
      const w = window as any;
      let workers = 0;
      const NativeWorker = w.Worker;
      w.Worker = function (src: string) {
        workers++;
        return new NativeWorker(src);
      };
      const client = new w.RealtimeSDK.RealtimeClient(url, { transports: ['websocket'] });
      const channel = client.presence(roomId, { userId: 'timer', heartbeatIntervalMs: 300, heartbeatTimeoutMs: 5000 });
      let acks = 0;
      const emit = client.emit.bind(client);
      client.emit = (event: string, ...args: unknown[]) => {
        const p = emit(event, ...args);
        if (event === 'presence:heartbeat') p.then(() => acks++, () => undefined);
        return p;
      };
      await channel.join();
      // Three acknowledged heartbeats (300 ms apart; a busy machine may take longer).
      for (const end = Date.now() + 10_000; acks < 3 && Date.now() < end; ) {
        await new Promise((r) => setTimeout(r, 100));
      }
      w.timerChannel = channel;
      return { workers, acks, missed: channel.missedHeartbeats, status: channel.status };
    },
    { url: serverUrl, roomId },
  );
  expect(result.workers).toBe(1);
  expect(result.acks).toBeGreaterThanOrEqual(3);
  expect(result).toMatchObject({ missed: 0, status: 'joined' });

  const lastSeen = async () => {
    const res = await fetch(`${serverUrl}/v1/rooms/${encodeURIComponent(roomId)}/presence`);
    const snap = (await res.json()) as { connections: Array<{ lastSeenMs: number }> };
    return snap.connections[0]!.lastSeenMs;
  };
  const first = await lastSeen();
  await expect.poll(lastSeen, { timeout: 3000 }).toBeGreaterThan(first);
  await context.close();
  expect(pageErrors).toEqual([]);
});

it('the Topics panel: two pages subscribe, a publish and an emit through the demo server arrive, a drop resubscribes; the API token stays on the server', async () => {
  const token = `demo-api-token-${Math.random().toString(36).slice(2)}`;
  const server = await startServer(inject('serverBinary'), { ...SERVER_ENV, API_TOKEN: token });
  const backendDemo = await startDemo({ RTM_SERVER_URL: server.url, API_TOKEN: token });
  const contexts: Array<{ close(): Promise<void> }> = [];
  const topic = `scores ⚽ ${Date.now().toString(36)}`;
  const roomId = `${room}-topics`;
  const chip = (state: string) => `#topic-list li[data-topic="${topic}"][data-state="${state}"]`;
  const received = (page: Page) =>
    page.$$eval(`#topic-messages li[data-topic="${topic}"] code`, (li) => li.map((x) => x.textContent ?? ''));
  try {
    const open = async (userId: string) => {
      const context = await browser!.newContext({ viewport: { width: 1440, height: 900 } });
      contexts.push(context);
      const page = await context.newPage();
      page.on('pageerror', (err) => pageErrors.push(`${userId}: ${err.message}`));
      await page.goto(backendDemo.url);
      await page.fill('#server-url', server.url);
      await page.fill('#room', roomId);
      await page.fill('#user', userId);
      await page.click('#join');
      await page.waitForSelector(member(userId));
      await page.fill('#topic', topic);
      await page.click('#topic-subscribe');
      await page.waitForSelector(chip('subscribed'));
      return page;
    };
    const carol = await open('carol');
    const dave = await open('dave');

    // The curl command shows what a backend sends, with a placeholder for the token.
    const curl = (await carol.textContent('#publish-curl')) ?? '';
    expect(curl).toContain(`${server.url}/v1/topics/${encodeURIComponent(topic)}/publish`);
    expect(curl).toContain('Authorization: Bearer $API_TOKEN');
    expect(await carol.textContent('#backend-note')).toContain(`to ${server.url} with the API token`);

    await carol.fill('#publish-data', '{ "home": 3, "away": 1 }');
    await carol.click('#publish');
    for (const page of [carol, dave]) {
      await expect.poll(() => received(page)).toEqual(['{"home":3,"away":1}']);
    }
    await carol.waitForSelector('#log li[data-kind="event"]:has-text("HTTP 200")');

    // A backend emit to carol's socket (client.id) reaches client.on in her tab only.
    await carol.click('#emit-self');
    await carol.waitForSelector('#log li[data-kind="event"]:has-text("demo:notice from a backend")');

    // A dropped connection: the page subscribes again by itself and gets the next message.
    await carol.click('#drop');
    await carol.waitForSelector('#log li[data-kind="topic"]:has-text("subscribed again to")');
    // Dave unsubscribes: the next message reaches carol only.
    await dave.click(`#topic-list li[data-topic="${topic}"] button`);
    await dave.waitForSelector('#log li[data-kind="topic"]:has-text("unsubscribed from")');
    await dave.fill('#topic', topic);
    await dave.fill('#publish-data', '"after the drop"');
    await dave.click('#publish');
    await expect.poll(() => received(carol)).toEqual(['{"home":3,"away":1}', '"after the drop"']);
    await dave.waitForTimeout(300);
    expect(await received(dave)).toEqual(['{"home":3,"away":1}']);
    expect(await dave.$$eval('#log li[data-kind="event"]', (li) => li.map((x) => x.textContent ?? '').join('\n'))).not.toContain(
      'demo:notice',
    );

    // The token is nowhere in what the demo server hands the page.
    for (const path of ['/', '/app.js', '/api/config', '/sdk/realtime-sdk.js']) {
      const text = await (await fetch(`${backendDemo.url}${path}`)).text();
      expect(text, path).not.toContain(token);
    }
    expect(await carol.content()).not.toContain(token);
    // Only same-origin JSON calls are forwarded.
    const foreign = await fetch(`${backendDemo.url}/api/publish`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Origin: 'http://evil.example' },
      body: JSON.stringify({ topic, data: 1 }),
    });
    expect(foreign.status).toBe(403);
    expect(pageErrors).toEqual([]);
  } finally {
    for (const c of contexts) await c.close();
    backendDemo.stop();
    await server.stop();
  }
});

it('the Big room panel: 300 bots from the demo server; a count page and a paged batched page show the live count and a first page', async () => {
  const bigDemo = await startDemo({ RTM_SERVER_URL: serverUrl });
  const bigRoom = `big-${Date.now().toString(36)}`;
  const open = async (userId: string, mode: 'count' | 'batched') => {
    const context = await browser!.newContext({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(`${userId}: ${err.message}`));
    await page.goto(bigDemo.url);
    await page.fill('#server-url', serverUrl);
    await page.fill('#room', bigRoom);
    await page.fill('#user', userId);
    await page.selectOption('#events-mode', mode);
    await page.click('#join');
    // A first page is in connId order: it need not list this member.
    await expect.poll(() => page.textContent('#fact-status')).toBe('joined');
    return page;
  };
  try {
    const counter = await open('counter', 'count');
    expect(await counter.textContent('#big-mode')).toBe('count');
    await counter.fill('#bot-count', '300');
    await counter.click('#bots-set');
    await expect.poll(() => counter.textContent('#big-bots'), { timeout: 45_000 }).toBe('300');
    await expect.poll(() => counter.textContent('#big-count'), { timeout: 10_000 }).toBe('301 people · 301 conn');
    // The count page listed itself only; the count changed, so a new picture is one click away.
    await expect.poll(() => counter.textContent('#paging-text')).toContain('Listing 1 of 301');
    await counter.click('#load-more');
    await expect.poll(() => counter.$$eval('#members li[data-user]', (li) => li.length)).toBe(50);
    await expect.poll(() => counter.textContent('#big-listed')).toBe('50 of 301');

    const pager = await open('pager', 'batched');
    await expect.poll(() => pager.textContent('#big-count')).toBe('302 people · 302 conn');
    expect(await pager.$$eval('#members li[data-user]', (li) => li.length)).toBe(50);
    expect(await pager.textContent('#member-count')).toBe('302 people · 302 connections');
    await pager.click('#load-more');
    await expect.poll(() => pager.textContent('#big-listed')).toBe('100 of 302');
    await pager.screenshot({ path: join(tmpdir(), 'rtm-demo-big-room.png') });
    await expect.poll(() => counter.textContent('#big-count')).toBe('302 people · 302 conn');

    // The bots leave: the count follows on both pages, the batched page's list too.
    await pager.click('#bots-remove');
    await expect.poll(() => pager.textContent('#big-bots'), { timeout: 30_000 }).toBe('0');
    await expect.poll(() => counter.textContent('#big-count'), { timeout: 10_000 }).toBe('2 people · 2 conn');
    await expect.poll(() => pager.textContent('#big-count'), { timeout: 10_000 }).toBe('2 people · 2 conn');
    await expect.poll(() => pager.$$eval('#members li[data-user]', (li) => li.length)).toBeLessThanOrEqual(2);
    expect(pageErrors).toEqual([]);
  } finally {
    bigDemo.stop();
  }
});
