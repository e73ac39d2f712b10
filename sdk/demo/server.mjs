// Static server of the demo playground: the page from demo/ and the SDK's <script>
// bundle from dist/ (run `npm run demo`, which builds it first).
//
//   PORT   port to listen on (default 4173)
//   HOST   address to listen on (default: all interfaces)
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const demoDir = dirname(fileURLToPath(import.meta.url));
const distDir = join(demoDir, '..', 'dist');
const port = Number(process.env.PORT || 4173);
const host = process.env.HOST || undefined;

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

server.listen(port, host, () => {
  const addr = server.address();
  const shown = typeof addr === 'object' && addr ? addr.port : port;
  console.log(`demo playground: http://localhost:${shown}  (server URL is set in the page; default http://localhost:3000)`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
