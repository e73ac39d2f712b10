// The demo playground in headless Chromium: two pages, one room, against the real server.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { launchChromium, startDemo, type Demo } from '../support/browser.js';
import { SDK_DIR } from '../support/server.js';

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
      const channel = client.presence(roomId, { userId: 'timer', heartbeatIntervalMs: 300 });
      let acks = 0;
      const emit = client.emit.bind(client);
      client.emit = (event: string, ...args: unknown[]) => {
        const p = emit(event, ...args);
        if (event === 'presence:heartbeat') p.then(() => acks++, () => undefined);
        return p;
      };
      await channel.join();
      await new Promise((r) => setTimeout(r, 1600));
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
