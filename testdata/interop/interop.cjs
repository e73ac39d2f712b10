// Interop check with the official socket.io-client of both generations, driven by
// interop_test.go: node interop.cjs <url1> <url2> <transports> <room> <3|4>
// Two clients (one per node) join, patch, chat and leave with non-ASCII ids,
// state and text; prints one JSON line {"ok":true,...} or {"ok":false,"error":...}.
const [url1, url2, transportsArg, room, version] = process.argv.slice(2);
const io = require(version === '4' ? 'sio4' : 'sio2');
const { isDeepStrictEqual } = require('node:util');

const transports = transportsArg.split(',');
const { connect, ack, check } = require('./support.cjs').helpers(io, transports, { reconnection: false });
const userA = 'zoë-👍';
const userB = 'bjørn-中文';

function next(s, event, pred) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no ' + event)), 5000);
    const h = (msg) => {
      if (!pred(msg)) return;
      clearTimeout(t);
      s.off(event, h);
      resolve(msg);
    };
    s.on(event, h);
  });
}

async function main() {
  const a = await connect(url1);
  const b = await connect(url2);
  const out = { transports, upgraded: false };
  if (transports.length > 1) {
    // polling first, then the upgrade to websocket
    await new Promise((resolve, reject) => {
      if (a.io.engine.transport.name === 'websocket') return resolve();
      const t = setTimeout(() => reject(new Error('no upgrade')), 5000);
      a.io.engine.once('upgrade', () => { clearTimeout(t); resolve(); });
    });
  }
  out.transportA = a.io.engine.transport.name;
  out.upgraded = transports.length > 1 && out.transportA === 'websocket';

  const stateA = { msg: 'héllo 中文 🚀', n: 1 };
  const joinedA = next(a, 'presence:event', (e) => e.type === 'join' && e.userId === userA);
  const ackA = await ack(a, 'presence:join', { roomId: room, userId: userA, state: stateA });
  check(ackA.snapshot.roomId === room, 'snapshot roomId');
  check(ackA.snapshot.members[0] === userA, 'snapshot member');
  check(isDeepStrictEqual(ackA.snapshot.connections[0].state, stateA), 'snapshot state');
  const evA = await joinedA;
  check(evA.seq === ackA.snapshot.seq && evA.connId === ackA.self.connId, 'own join event');

  const seenB = next(a, 'presence:event', (e) => e.type === 'join' && e.userId === userB);
  const ackB = await ack(b, 'presence:join', { roomId: room, userId: userB });
  check(ackB.snapshot.members.includes(userA) && ackB.snapshot.members.includes(userB), 'members');
  const connA = ackB.snapshot.connections.find((c) => c.userId === userA);
  check(connA && isDeepStrictEqual(connA.state, stateA), 'state seen by B');
  const evB = await seenB;
  check(evB.roomId === room && evB.userJoined === true && evB.count.members === 2, 'join event for B');

  const upd = next(b, 'presence:event', (e) => e.type === 'update');
  const hb = await ack(a, 'presence:heartbeat', { epoch: ackA.self.epoch, patchState: { msg: 'ça 😀', n: null } });
  check(hb.changed === true && hb.epoch === ackA.self.epoch + 1, 'heartbeat ack');
  const evU = await upd;
  check(evU.state.msg === 'ça 😀' && !('n' in evU.state) && evU.userId === userA, 'update event');

  const chat = next(b, 'chat:message', () => true);
  const sent = await ack(a, 'chat:message', { text: 'grüße 👋 — “quotes”' });
  const msg = await chat;
  check(msg.text === 'grüße 👋 — “quotes”' && msg.id === sent.id && msg.userId === userA && msg.roomId === room, 'chat');

  const left = next(b, 'presence:event', (e) => e.type === 'leave');
  const lv = await ack(a, 'presence:leave', {});
  check(lv.removed === true, 'leave ack');
  const evL = await left;
  check(evL.reason === 'leave' && evL.userId === userA && evL.userLeft === true, 'leave event');

  // Bad input is answered, and the socket survives.
  const bad = await new Promise((resolve) => b.emit('presence:heartbeat', { epoch: 'x' }, resolve));
  check(bad.ok === false && bad.error.code === 'invalid_payload', 'invalid payload ack');
  await ack(b, 'presence:leave');
  a.close();
  b.close();
  out.ok = true;
  return out;
}

// Write the result, then exit once it is flushed (exiting at once can lose
// output written to a pipe).
const finish = (res, code) => process.stdout.write(JSON.stringify(res) + '\n', () => process.exit(code));
main().then(
  (out) => finish(out, 0),
  (err) => finish({ ok: false, error: String((err && err.stack) || err) }, 1),
);
