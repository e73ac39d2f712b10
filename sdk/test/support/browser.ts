// Headless Chromium (playwright-core, Debian's /usr/bin/chromium) and the demo's static
// server, for the browser tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { freePort, SDK_DIR } from './server.js';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** Demo is the running demo server. */
export interface Demo {
  url: string;
  stop: () => void;
}

/**
 * startDemo serves demo/ and dist/ (demo/server.mjs) on a free loopback port; `env` sets
 * its backend (RTM_SERVER_URL, API_TOKEN).
 */
export async function startDemo(env: Record<string, string> = {}): Promise<Demo> {
  if (!existsSync(join(SDK_DIR, 'dist', 'realtime-sdk.js'))) {
    throw new Error('dist/realtime-sdk.js is missing: run `npm run build` first (`npm run test:browser` does)');
  }
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(process.execPath, [join(SDK_DIR, 'demo', 'server.mjs')], {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', ...env },
    stdio: 'ignore',
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      if ((await fetch(url)).ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('the demo server did not start');
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url, stop: () => child.kill('SIGTERM') };
}

/** launchChromium starts headless Chromium with a fresh temporary profile. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install it with \`apt-get install -y chromium\` (or set CHROMIUM_PATH)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
