// Namespaces and binary payloads with the official socket.io-client of both
// generations, driven by interop_test.go: node namespace.cjs <url> <transports> <3|4>
// The node serves "/echo" (namespace_test.go's echoNamespaces): the client
// connects to it (v4 with auth), gets "hello" with a binary argument, has
// "echo" acknowledge its arguments, binary ones included, and is refused by
// a namespace nobody serves. Prints {"ok":true} or {"ok":false,"error":...}.
const [url, transportsArg, version] = process.argv.slice(2);
const io = require(version === '4' ? 'sio4' : 'sio2');
const { isDeepStrictEqual } = require('node:util');

const transports = transportsArg.split(',');
const opts = { transports, reconnection: false, forceNew: true, timeout: 5000, auth: { pass: 'ok' } };

function within(what, p) {
  return Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error(what + ': timed out')), 5000))]);
}

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}

function bytes(b) {
  return Buffer.isBuffer(b) ? [...b] : b instanceof ArrayBuffer ? [...new Uint8Array(b)] : b;
}

async function main() {
  const s = io(url + '/echo', opts);
  const hello = await within('hello', new Promise((resolve, reject) => {
    s.on('hello', (...args) => resolve(args));
    s.on('connect_error', (e) => reject(new Error('connect_error: ' + (e.message || e))));
    s.on('error', (e) => reject(new Error('error: ' + e)));
  }));
  check(hello[0] === '/echo' && isDeepStrictEqual(bytes(hello[1]), [0, 1, 2]), 'hello ' + JSON.stringify(hello));

  const back = await within('echo', new Promise((resolve) =>
    s.emit('echo', 1, 'two', Buffer.from([9, 8, 7]), { nested: [Buffer.from('é')] }, (...args) => resolve(args))));
  check(back.length === 4 && back[0] === 1 && back[1] === 'two', 'echo ' + JSON.stringify(back));
  check(isDeepStrictEqual(bytes(back[2]), [9, 8, 7]), 'echo binary ' + JSON.stringify(back[2]));
  check(isDeepStrictEqual(bytes(back[3].nested[0]), [...Buffer.from('é')]), 'echo nested binary');

  const kind = await within('kind', new Promise((resolve) => s.emit('kind', Buffer.from([1]), (k) => resolve(k))));
  check(kind === '[]uint8', 'kind ' + kind);

  const refused = await within('refusal', new Promise((resolve) => {
    const r = io(url + '/nowhere', opts);
    r.on('connect_error', (e) => { r.close(); resolve(e.message || String(e)); });
    r.on('error', (e) => { r.close(); resolve(String(e)); });
    r.on('connect', () => { r.close(); resolve('connected'); });
  }));
  check(refused === 'Invalid namespace', 'refusal ' + refused);
  s.close();
}

main().then(
  () => { console.log(JSON.stringify({ ok: true })); process.exit(0); },
  (e) => { console.log(JSON.stringify({ ok: false, error: String(e && e.stack || e) })); process.exit(1); },
);
