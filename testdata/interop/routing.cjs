// Routing check with the official socket.io-client of both generations, driven
// by interop_test.go: node routing.cjs <url1> <url2> <transports> <topic> <3|4> <apiToken>
// Two clients (one per node): topics published by a backend, a backend emit to a
// user and to one socket, and a backend disconnect of one socket, which the
// client must take as the server's (no reconnection). Prints one JSON line.
const [url1, url2, transportsArg, topic, version, apiToken] = process.argv.slice(2);
const io = require(version === '4' ? 'sio4' : 'sio2');
const transports = transportsArg.split(',');
const { connect, ack, check } = require('./support.cjs').helpers(io, transports, { reconnectionDelay: 50 });
const user = 'zoë-' + topic;

function next(s, event) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no ' + event)), 5000);
    s.once(event, (...args) => { clearTimeout(t); resolve(args); });
  });
}

async function post(base, path, body) {
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { Authorization: 'Bearer ' + apiToken, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 200 || text !== '{"ok":true}') throw new Error(`POST ${path}: ${res.status} ${text}`);
}

async function main() {
  const a = await connect(url1);
  const b = await connect(url2);
  check(typeof a.id === 'string' && a.id.length > 0, 'socket id');

  for (const s of [a, b]) {
    const r = await ack(s, 'topic:subscribe', { topic });
    check(r.topic === topic, 'subscribe ack');
  }
  const gotA = next(a, 'topic:message');
  const gotB = next(b, 'topic:message');
  await post(url2, `/v1/topics/${encodeURIComponent(topic)}/publish`, { data: { score: 'ünï 🎉' } });
  for (const [m] of [await gotA, await gotB]) {
    check(m.topic === topic && m.data.score === 'ünï 🎉' && m.ts > 0, 'topic message ' + JSON.stringify(m));
  }

  await ack(a, 'presence:join', { roomId: 'r-' + topic, userId: user });
  const toUser = next(a, 'notice');
  await post(url2, `/v1/users/${encodeURIComponent(user)}/emit`, { event: 'notice', data: { n: 1 } });
  check((await toUser)[0].n === 1, 'emit to the user');

  const toSocket = next(b, 'ping-you');
  await post(url1, `/v1/sockets/${encodeURIComponent(b.id)}/emit`, { event: 'ping-you' });
  check((await toSocket).length === 0, 'emit to the socket, no argument');

  const gone = next(b, 'disconnect');
  await post(url1, `/v1/sockets/${encodeURIComponent(b.id)}/disconnect`, {});
  const [reason] = await gone;
  check(reason === 'io server disconnect', 'disconnect reason ' + reason);
  await new Promise((r) => setTimeout(r, 300));
  check(!b.connected, 'the disconnected client stays disconnected');
  a.close();
  b.close();
  return { ok: true };
}

const finish = (res, code) => process.stdout.write(JSON.stringify(res) + '\n', () => process.exit(code));
main().then(
  (out) => finish(out, 0),
  (err) => finish({ ok: false, error: String((err && err.stack) || err) }, 1),
);
