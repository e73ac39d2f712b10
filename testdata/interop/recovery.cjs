// Recovery check with the official socket.io-client of both generations, driven
// by interop_test.go: node recovery.cjs <url1> <url2> <transports> <room> <3|4>
// A member on node 1 drops mid-stream while a member on node 2 chats and updates
// its state; it comes back on a new socket with resume and since, and must get
// exactly what it missed, in order, before the acknowledgement, then a live
// message. Prints one JSON line.
const [url1, url2, transportsArg, roomId, version] = process.argv.slice(2);
const io = require(version === '4' ? 'sio4' : 'sio2');
const transports = transportsArg.split(',');
const { connect, ack, check } = require('./support.cjs').helpers(io, transports, { reconnection: false });
const AWAY = 20; // events while away: chat messages and state updates, alternating

// record keeps, in arrival order, the room's events a socket receives, as
// "seq.sub kind detail" lines, and the position of the last one.
function record(s) {
  const log = { lines: [], seq: 0, sub: 0 };
  s.on('presence:event', (e) => {
    if (e.roomId !== roomId) return;
    log.lines.push(`${e.seq}.0 ${e.type} ${e.userId}`);
    log.seq = e.seq;
    log.sub = 0;
  });
  s.on('chat:message', (m) => {
    if (m.roomId !== roomId) return;
    log.lines.push(`${m.seq}.${m.sub} chat ${m.text}`);
    log.seq = m.seq;
    log.sub = m.sub;
  });
  return log;
}

async function until(cond, what) {
  for (const end = Date.now() + 5000; !cond(); ) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function main() {
  const a = await connect(url1);
  const aLog = record(a);
  const joined = await ack(a, 'presence:join', { roomId, userId: 'ana' });
  const epoch = joined.history && joined.history.epoch;
  check(typeof epoch === 'string' && epoch.length > 0, 'history epoch ' + JSON.stringify(joined.history));
  const b = await connect(url2);
  const bLog = record(b);
  await ack(b, 'presence:join', { roomId, userId: 'bo' });
  await ack(b, 'chat:message', { text: 'before' });
  await until(() => aLog.lines.some((l) => l.endsWith('chat before')), "ana's copy of 'before'");
  const since = { seq: aLog.seq, sub: aLog.sub, epoch };
  const seenBefore = aLog.lines.length;

  // Ana's socket drops (the client closes it; the server's disconnect grace keeps
  // her connection) while bo chats and updates his state.
  a.close();
  let hbEpoch = 1;
  for (let i = 0; i < AWAY; i++) {
    if (i % 2 === 0) {
      await ack(b, 'chat:message', { text: 'away-' + i });
    } else {
      const r = await ack(b, 'presence:heartbeat', { epoch: hbEpoch, patchState: { i } });
      hbEpoch = r.epoch;
    }
  }
  const afterBefore = () => bLog.lines.slice(bLog.lines.findIndex((l) => l.endsWith('chat before')) + 1);
  await until(() => afterBefore().length >= AWAY, "bo's copies of the events while ana was away");
  await new Promise((r) => setTimeout(r, 100)); // nothing more comes
  const missed = afterBefore();
  check(missed.length === AWAY, `bo saw ${missed.length} events while ana was away; want ${AWAY}`);

  // Back on a new socket: resume her connection and recover from her position.
  const a2 = await connect(url1);
  const a2Log = record(a2);
  const back = await ack(a2, 'presence:join', {
    roomId,
    userId: 'ana',
    resume: { connId: joined.self.connId, epoch: joined.self.epoch },
    since,
  });
  check(back.self.connId === joined.self.connId, 'resumed connection ' + JSON.stringify(back.self));
  check(back.recovered === true, 'recovered ' + back.recovered);
  // What was replayed came before the acknowledgement: her resume's events (if
  // any) come after what she missed.
  const replayed = a2Log.lines.slice();
  check(back.replayed === replayed.length, `replayed ${back.replayed}, received ${replayed.length} before the ack`);
  check(
    JSON.stringify(replayed.slice(0, AWAY)) === JSON.stringify(missed),
    'replayed ' + JSON.stringify(replayed) + ' ; missed ' + JSON.stringify(missed),
  );
  check(replayed.slice(AWAY).every((l) => !l.includes(' chat ')), 'no chat after the missed events: ' + JSON.stringify(replayed));

  // Then live, once.
  await ack(b, 'chat:message', { text: 'live' });
  await until(() => a2Log.lines.some((l) => l.endsWith('chat live')), "ana's live message");
  await new Promise((r) => setTimeout(r, 200));
  const all = a2Log.lines;
  check(new Set(all).size === all.length, 'a duplicate: ' + JSON.stringify(all));
  check(all[all.length - 1].endsWith('chat live'), 'live last: ' + JSON.stringify(all));
  check(seenBefore > 0, 'ana saw the room before she dropped');

  a2.close();
  b.close();
  console.log(JSON.stringify({ ok: true, replayed: back.replayed }));
}

main().then(
  () => process.exit(0),
  (err) => {
    console.log(JSON.stringify({ ok: false, error: String(err && err.message ? err.message : err) }));
    process.exit(1);
  },
);
