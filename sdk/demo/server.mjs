// Static server of the demo playground: the page from demo/ and the SDK's <script>
// bundle from dist/ (run `npm run demo`, which builds it first).
//
//   PORT            port to listen on (default 4173)
//   HOST            address to listen on (default: all interfaces)
//   RTM_SERVER_URL  the realtime server the demo's backend calls go to (default
//                   http://localhost:3000)
//   API_TOKEN       the server's API token, for those calls (default: none, for a server
//                   without API_TOKEN)
//
// It also plays the app's backend for the Topics panel: POST /api/publish and POST
// /api/emit forward to the server's HTTP API (POST /v1/topics/{topic}/publish, POST
// /v1/sockets/{socketId}/emit) with the API token, which stays here: it is never sent to
// the page, and the calls only ever go to RTM_SERVER_URL, whatever the page asks.
//
// For the Big room panel it runs bots: POST /api/bots { room, count } brings the room's
// bots to `count` (at most 500 in all; 0 removes them). Each bot is the SDK itself (the
// ES module in dist/) joined to RTM_SERVER_URL with events "none", so the bots cost the
// server no event traffic.
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const demoDir = dirname(fileURLToPath(import.meta.url));
const distDir = join(demoDir, '..', 'dist');
const port = Number(process.env.PORT || 4173);
const host = process.env.HOST || undefined;
const rtmServer = (process.env.RTM_SERVER_URL || 'http://localhost:3000').replace(/\/+$/, '');
const apiToken = process.env.API_TOKEN || '';
const MAX_BODY = 256 * 1024;
const MAX_BOTS = 500;

const types = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
};

/** resolveFile maps a URL path to a file under demo/ or, for /sdk/*, under dist/. */
function resolveFile(pathname) {
  let root = demoDir;
  let rel = pathname;
  if (pathname.startsWith('/sdk/')) {
    root = distDir;
    rel = pathname.slice('/sdk'.length);
  }
  if (rel.endsWith('/')) rel += 'index.html';
  const file = normalize(join(root, rel));
  if (file !== root && !file.startsWith(root + sep)) return null;
  return file;
}

const server = createServer((req, res) => {
  let pathname;
  try {
    pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
  } catch {
    res.writeHead(400).end('bad request');
    return;
  }
  if (pathname.startsWith('/api/')) {
    void serveApi(req, res, pathname);
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD' }).end();
    return;
  }
  const file = resolveFile(pathname);
  let stat;
  try {
    stat = file ? statSync(file) : null;
  } catch {
    stat = null;
  }
  if (!file || !stat || !stat.isFile()) {
    const hint = pathname.startsWith('/sdk/') ? ' (run `npm run build` or `npm run demo` to build the SDK bundle)' : '';
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`not found: ${pathname}${hint}\n`);
    return;
  }
  res.writeHead(200, {
    'Content-Type': types[extname(file)] ?? 'application/octet-stream',
    'Content-Length': stat.size,
    'Cache-Control': 'no-cache',
  });
  if (req.method === 'HEAD') res.end();
  else createReadStream(file).pipe(res);
});

// --- the demo's backend ------------------------------------------------------------------

function sendJSON(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' }).end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * serveApi answers the page's backend calls. GET /api/config says where they go (never
 * the token, only whether there is one); POST /api/publish { topic, data } and POST
 * /api/emit { socketId, event, data } forward to RTM_SERVER_URL. Only same-origin JSON
 * requests are taken: another site's page cannot make a browser send them without a
 * CORS preflight, which this server does not answer.
 */
async function serveApi(req, res, pathname) {
  if (req.method === 'GET' && pathname === '/api/config') {
    sendJSON(res, 200, { server: rtmServer, apiToken: apiToken !== '' });
    return;
  }
  const routes = { '/api/publish': publishPath, '/api/emit': emitPath, '/api/bots': null };
  const route = routes[pathname];
  if (route === undefined) {
    sendJSON(res, 404, { message: 'not found' });
    return;
  }
  if (req.method !== 'POST') {
    res.writeHead(405, { Allow: 'POST' }).end();
    return;
  }
  const origin = req.headers.origin;
  if (!String(req.headers['content-type'] || '').startsWith('application/json') || (origin && origin !== `http://${req.headers.host}`)) {
    sendJSON(res, 403, { message: 'same-origin JSON requests only' });
    return;
  }
  let input;
  try {
    input = JSON.parse(await readBody(req));
  } catch {
    sendJSON(res, 400, { message: 'the body must be JSON' });
    return;
  }
  if (pathname === '/api/bots') {
    await serveBots(res, input);
    return;
  }
  const call = input && typeof input === 'object' ? route(input) : null;
  if (!call) {
    sendJSON(res, 400, { message: 'missing fields' });
    return;
  }
  const headers = { 'Content-Type': 'application/json' };
  if (apiToken) headers.Authorization = `Bearer ${apiToken}`;
  try {
    const upstream = await fetch(`${rtmServer}${call.path}`, { method: 'POST', headers, body: JSON.stringify(call.body) });
    const text = await upstream.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = { message: text.trim() };
    }
    sendJSON(res, upstream.status, { status: upstream.status, url: `${rtmServer}${call.path}`, body });
  } catch (err) {
    sendJSON(res, 502, { status: 502, url: `${rtmServer}${call.path}`, body: { message: `cannot reach ${rtmServer}: ${err.message}` } });
  }
}

/** publishPath maps { topic, data } to POST /v1/topics/{topic}/publish. */
function publishPath(input) {
  if (typeof input.topic !== 'string' || input.topic === '') return null;
  return { path: `/v1/topics/${encodeURIComponent(input.topic)}/publish`, body: { data: input.data ?? null } };
}

/** emitPath maps { socketId, event, data } to POST /v1/sockets/{socketId}/emit. */
function emitPath(input) {
  if (typeof input.socketId !== 'string' || input.socketId === '' || typeof input.event !== 'string') return null;
  return { path: `/v1/sockets/${encodeURIComponent(input.socketId)}/emit`, body: { event: input.event, data: input.data ?? null } };
}

// --- bots for the Big room panel ----------------------------------------------------------

/** The running bots by room: their clients and channels. */
const bots = new Map();
let botCounter = 0;
let sdkModule = null;

function botTotal() {
  let n = 0;
  for (const list of bots.values()) n += list.length;
  return n;
}

/** serveBots brings the bots of input.room to input.count, a few joins at a time. */
async function serveBots(res, input) {
  const room = input && typeof input.room === 'string' ? input.room : '';
  const count = input ? Number(input.count) : NaN;
  if (!room || !Number.isInteger(count) || count < 0) {
    sendJSON(res, 400, { message: 'room and count (an integer >= 0) are required' });
    return;
  }
  const list = bots.get(room) ?? [];
  bots.set(room, list);
  const want = Math.min(count, list.length + Math.max(0, MAX_BOTS - botTotal()));
  while (list.length > want) {
    const bot = list.pop();
    bot.client.disconnect(); // leaves the room first
  }
  try {
    sdkModule ??= await import('../dist/index.mjs');
    while (list.length < want) {
      const step = [];
      for (let i = 0; i < 25 && list.length + step.length < want; i++) {
        const client = new sdkModule.RealtimeClient(rtmServer, { transports: ['websocket'], ackTimeoutMs: 10_000 });
        const id = ++botCounter;
        const channel = client.presence(room, {
          userId: `bot-${String(id).padStart(3, '0')}`,
          state: { status: ['available', 'busy', 'away'][id % 3], bot: true },
          events: 'none',
          workerTimers: false,
          resumeOnReload: false,
        });
        step.push({ client, channel });
      }
      const joined = await Promise.allSettled(step.map((b) => b.channel.join()));
      joined.forEach((r, i) => {
        if (r.status === 'fulfilled') list.push(step[i]);
        else step[i].client.disconnect();
      });
      if (joined.every((r) => r.status === 'rejected')) {
        throw joined[0].reason;
      }
    }
  } catch (err) {
    if (list.length === 0) bots.delete(room);
    sendJSON(res, 502, { room, bots: list.length, message: `bots could not join on ${rtmServer}: ${err.message}` });
    return;
  }
  if (list.length === 0) bots.delete(room);
  sendJSON(res, 200, { room, bots: list.length, max: MAX_BOTS, server: rtmServer });
}

server.listen(port, host, () => {
  const addr = server.address();
  const shown = typeof addr === 'object' && addr ? addr.port : port;
  console.log(`demo playground: http://localhost:${shown}  (server URL is set in the page; default http://localhost:3000)`);
  console.log(`backend calls (publish, emit) go to ${rtmServer} ${apiToken ? 'with' : 'without'} an API token`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const list of bots.values()) for (const bot of list) bot.client.disconnect();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 500).unref();
  });
}
