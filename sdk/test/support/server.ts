// Builds and runs the real Go server for the integration and browser tests.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** SDK_DIR is sdk/; REPO_DIR is the Go server's module root. */
export const SDK_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const REPO_DIR = resolve(SDK_DIR, '..');

/** freePort asks the kernel for a free TCP port on the loopback interface. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

/** buildServer runs `go build` at the repository root and returns the binary's path. */
export function buildServer(): { binary: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'rtm-sdk-test-'));
  const binary = join(dir, 'rtm-server');
  const res = spawnSync('go', ['build', '-o', binary, '.'], { cwd: REPO_DIR, encoding: 'utf8', timeout: 300_000 });
  if (res.error || res.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(
      `go build failed in ${REPO_DIR} (is Go installed and does the server compile?):\n${res.error?.message ?? ''}${res.stderr ?? ''}`,
    );
  }
  return { binary, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** RunningServer is a started server process. */
export interface RunningServer {
  url: string;
  port: number;
  logs: () => string;
  stop: () => Promise<void>;
}

/**
 * startServer starts `binary` on a free port with the given environment (no REDIS_URL: the
 * server embeds its own Redis) and waits until GET /healthz answers 200.
 */
export async function startServer(binary: string, env: Record<string, string> = {}): Promise<RunningServer> {
  const port = await freePort();
  const childEnv: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), ...env };
  delete childEnv.REDIS_URL;
  delete childEnv.JWT_SECRET;
  delete childEnv.ALLOWED_ORIGINS;
  Object.assign(childEnv, env);
  const child: ChildProcess = spawn(binary, [], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let exited: number | null | undefined;
  child.on('exit', (code) => {
    exited = code;
  });

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exited !== undefined) throw new Error(`server exited with ${exited} before it was healthy:\n${output}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server not healthy within 20 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    url,
    port,
    logs: () => output,
    stop: () =>
      new Promise<void>((done) => {
        if (exited !== undefined) return done();
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(timer);
          done();
        });
        child.kill('SIGTERM');
      }),
  };
}

/** SERVER_ENV is the environment the tests run the server with. */
export const SERVER_ENV: Record<string, string> = {
  PRESENCE_DISCONNECT_GRACE_MS: '2000',
  PRESENCE_TTL_MS: '30000',
  PRESENCE_REAPER_INTERVAL_MS: '500',
};

/** RunningRedis is a started redis-server. */
export interface RunningRedis {
  url: string;
  /** command sends one command and resolves with the raw RESP reply. */
  command: (...args: string[]) => Promise<string>;
  stop: () => void;
}

/** redisCommand sends one command to the redis-server on `port` and returns the raw reply. */
function redisCommand(port: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => {
      s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    });
    s.once('data', (d) => {
      resolve(d.toString());
      s.destroy();
    });
    s.once('error', reject);
  });
}

/**
 * startRedis runs a redis-server on a free loopback port (persistence off, in a temporary
 * directory) for tests that need several server nodes on one Redis, and waits for PING.
 */
export async function startRedis(): Promise<RunningRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'rtm-sdk-redis-'));
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  );
  const stop = () => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  const command = (...args: string[]) => redisCommand(port, args);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const pong = await command('PING').then(
      (r) => r.startsWith('+PONG'),
      () => false,
    );
    if (pong) return { url: `redis://127.0.0.1:${port}`, command, stop };
    if (Date.now() > deadline) {
      stop();
      throw new Error('redis-server did not answer PING within 10 s (is it installed? apt-get install -y redis-server)');
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
