// Page reloads, duplicated tabs and hidden tabs in headless Chromium, through the demo
// page (the SDK's <script> bundle), against the real server.
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { launchChromium, startDemo, type Demo } from '../support/browser.js';
import { SERVER_ENV } from '../support/server.js';

const serverUrl = inject('serverUrl');
const GRACE_MS = Number(SERVER_ENV.PRESENCE_DISCONNECT_GRACE_MS);
const REAPER_MS = Number(SERVER_ENV.PRESENCE_REAPER_INTERVAL_MS);

let demo: Demo | undefined;
let browser: Browser | undefined;
const contexts: BrowserContext[] = [];
const pageErrors: string[] = [];
let roomCounter = 0;

beforeAll(async () => {
  demo = await startDemo();
  browser = await launchChromium();
});
afterEach(async () => {
  for (const c of contexts.splice(0)) await c.close();
  expect(pageErrors.splice(0)).toEqual([]);
});
afterAll(async () => {
  await browser?.close();
  demo?.stop();
});

function newRoom(name: string): string {
  return `${name}-${Date.now().toString(36)}-${++roomCounter}`;
}

const member = (userId: string) => `#members li[data-user="${userId}"]`;

/** newTab opens a page in a context of its own (a window of its own: never a background tab). */
async function newTab(name: string, context?: BrowserContext): Promise<Page> {
  if (!context) {
    context = await browser!.newContext();
    contexts.push(context);
  }
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(`${name}: ${err.message}`));
  return page;
}

/** openAs loads the demo and joins `roomId` as `userId` through its form, as a person would. */
async function openAs(userId: string, roomId: string): Promise<Page> {
  const page = await newTab(userId);
  await page.goto(demo!.url);
  await page.fill('#server-url', serverUrl);
  await page.fill('#room', roomId);
  await page.fill('#user', userId);
  await page.click('#join');
  await joined(page);
  return page;
}

/** joined waits until the page's channel is joined and returns its connId. */
async function joined(page: Page): Promise<string> {
  await page.waitForSelector('#fact-status:text-is("joined")');
  await page.waitForFunction(() => /^\S{8,}$/.test(document.getElementById('fact-conn')!.textContent ?? ''));
  return (await page.textContent('#fact-conn'))!;
}

/** roomConnIds reads the room's connections from the server's HTTP API. */
async function roomConnIds(roomId: string): Promise<string[]> {
  const res = await fetch(`${serverUrl}/v1/rooms/${encodeURIComponent(roomId)}/presence`);
  const snap = (await res.json()) as { connections: Array<{ connId: string }> };
  return snap.connections.map((c) => c.connId).sort();
}

/**
 * watch records, from now on, every change of the page's member list (any DOM mutation
 * under #members, as it happens) and every line added to its event log.
 */
async function watch(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = { memberMutations: [] as string[], log: [] as string[] };
    new MutationObserver((records) => {
      for (const r of records) w.memberMutations.push(`${r.type} ${(r.target as Element).outerHTML?.slice(0, 80) ?? ''}`);
    }).observe(document.getElementById('members')!, { childList: true, subtree: true, attributes: true, characterData: true });
    new MutationObserver((records) => {
      for (const r of records) {
        for (const n of Array.from(r.addedNodes)) {
          const el = n as Element;
          w.log.push(`${el.getAttribute('data-kind')}: ${el.querySelector('.text')?.textContent ?? ''}`);
        }
      }
    }).observe(document.getElementById('log')!, { childList: true });
    (window as any).__watch = w;
  });
}

async function watched(page: Page): Promise<{ memberMutations: string[]; log: string[] }> {
  return page.evaluate(() => (window as any).__watch);
}

/**
 * pastTheGrace waits until the server would have removed a connection whose socket went
 * away at `since` (the grace plus two reaper runs), checking all along that `connId` is
 * still in the room.
 */
async function pastTheGrace(roomId: string, connId: string, since: number): Promise<void> {
  const until = since + GRACE_MS + 2 * REAPER_MS;
  while (Date.now() < until) {
    expect(await roomConnIds(roomId)).toContain(connId);
    await new Promise((r) => setTimeout(r, REAPER_MS / 5));
  }
  expect(await roomConnIds(roomId)).toContain(connId);
}

describe('a page reload', () => {
  it('within the grace resumes the same connection: the other page sees nothing, the state is kept', async () => {
    const roomId = newRoom('reload');
    const alice = await openAs('alice', roomId);
    const bob = await openAs('bob', roomId);
    await bob.waitForSelector(member('alice'));
    await alice.click('#status-buttons button[data-status="busy"]');
    await bob.waitForSelector(`${member('alice')}[data-status="busy"]`);
    const connId = (await alice.textContent('#fact-conn'))!;
    await watch(bob);

    const reloadedAt = Date.now();
    await alice.reload();
    // The demo comes back as the same user in the same room, and the SDK resumes.
    expect(await joined(alice)).toBe(connId);
    expect(await alice.inputValue('#user')).toBe('alice');
    await alice.waitForSelector('#log li[data-kind="sync"]:has-text("resumed the same connection")');
    await alice.waitForSelector(`${member('alice')}[data-status="busy"]`);
    expect(JSON.parse((await alice.textContent('#own-state'))!)).toEqual({ status: 'busy' });
    await alice.waitForSelector(`${member('bob')}`);

    // Well past the grace of the socket the reload closed: still nothing on bob's page.
    await pastTheGrace(roomId, connId, reloadedAt);
    expect(await watched(bob)).toEqual({ memberMutations: [], log: [] });
    expect(await roomConnIds(roomId)).toHaveLength(2);

    // The resumed connection is live: a change shows on bob's page.
    await alice.click('#status-buttons button[data-status="away"]');
    await bob.waitForSelector(`${member('alice')}[data-status="away"]`);
  });

  it('after the grace is one leave and one join for the other page, with the state kept', async () => {
    const roomId = newRoom('late');
    const alice = await openAs('alice', roomId);
    const bob = await openAs('bob', roomId);
    await bob.waitForSelector(member('alice'));
    await alice.click('#status-buttons button[data-status="busy"]');
    await bob.waitForSelector(`${member('alice')}[data-status="busy"]`);
    const connId = (await alice.textContent('#fact-conn'))!;
    await watch(bob);

    await alice.goto('about:blank'); // the page is gone (its sessionStorage stays with the tab)
    await bob.waitForSelector(member('alice'), { state: 'detached' });
    await alice.goto(demo!.url); // back after the grace
    const next = await joined(alice);
    expect(next).not.toBe(connId);
    await bob.waitForSelector(`${member('alice')}[data-status="busy"]`);

    const log = (await watched(bob)).log;
    expect(log).toEqual([expect.stringMatching(/^leave: alice \[.+\] left \(disconnect\)/), expect.stringMatching(/^join: alice \[.+\] joined \{"status":"busy"\}/)]);
    expect(await roomConnIds(roomId)).toEqual([next, await bob.textContent('#fact-conn')].sort());
  });

  it('of a closed tab ends in one leave after the grace', async () => {
    const roomId = newRoom('close');
    const alice = await openAs('alice', roomId);
    const bob = await openAs('bob', roomId);
    await bob.waitForSelector(member('alice'));
    await watch(bob);
    await alice.close();
    await bob.waitForSelector(member('alice'), { state: 'detached' });
    expect((await watched(bob)).log).toEqual([expect.stringMatching(/^leave: alice \[.+\] left \(disconnect\)/)]);
  });
});

describe('a duplicated tab', () => {
  it('joins with a connection of its own; the original keeps its connection undisturbed', async () => {
    const roomId = newRoom('dup');
    const alice = await openAs('alice', roomId);
    const bob = await openAs('bob', roomId);
    await bob.waitForSelector(member('alice'));
    const connId = (await alice.textContent('#fact-conn'))!;
    await watch(alice);
    await watch(bob);

    // Duplicating a tab copies its sessionStorage into the new tab before the page loads.
    const copy = await alice.evaluate(() => JSON.stringify(Object.entries(sessionStorage)));
    const dup = await newTab('alice (duplicate)', alice.context());
    await dup.addInitScript((entries: string) => {
      if (sessionStorage.getItem('test:copied')) return;
      sessionStorage.setItem('test:copied', '1');
      for (const [k, v] of JSON.parse(entries) as Array<[string, string]>) sessionStorage.setItem(k, v);
    }, copy);
    // The original answers the duplicate's probe at once, but a busy machine can take longer
    // than the default 250 ms to deliver it: the duplicate waits 3 s for an answer.
    await dup.goto(`${demo!.url}/?reloadProbeMs=3000`);
    const dupConn = await joined(dup);
    expect(await dup.inputValue('#user')).toBe('alice');

    expect(dupConn).not.toBe(connId);
    await bob.waitForSelector(`${member('alice')} .conns:has-text("2 connections")`);
    expect(await roomConnIds(roomId)).toContain(connId);
    expect(await roomConnIds(roomId)).toContain(dupConn);
    expect(await alice.textContent('#fact-conn')).toBe(connId);
    expect(await alice.textContent('#fact-status')).toBe('joined');
    // The original saw the new connection join, and nothing happened to its own.
    await alice.waitForSelector(`${member('alice')} .conns:has-text("2 connections")`);
    expect((await watched(alice)).log).toEqual([expect.stringMatching(/^join: alice \[.+\] opened another connection/)]);
    expect((await watched(bob)).log).toEqual([expect.stringMatching(/^join: alice \[.+\] opened another connection/)]);
  });
});
