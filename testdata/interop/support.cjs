// Helpers shared by the interop scripts: connecting with the official client
// given, acknowledged emits that must answer ok, and checks.

// helpers returns connect(url), which resolves with a connected socket of
// io over transports (options added to the client's), ack(s, event, payload),
// which resolves with an {ok: true} acknowledgement within 5 s, and
// check(cond, what), which throws unless cond.
function helpers(io, transports, options) {
  function connect(url) {
    return new Promise((resolve, reject) => {
      const s = io(url, { transports, forceNew: true, timeout: 5000, ...options });
      s.once('connect', () => resolve(s));
      s.once('connect_error', (e) => reject(new Error('connect_error: ' + e)));
      s.once('error', (e) => reject(new Error('error: ' + e)));
    });
  }

  function ack(s, event, payload) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(event + ': no ack')), 5000);
      s.emit(event, payload, (res) => {
        clearTimeout(t);
        if (!res || res.ok !== true) reject(new Error(event + ': ' + JSON.stringify(res)));
        else resolve(res);
      });
    });
  }

  function check(cond, what) {
    if (!cond) throw new Error('check failed: ' + what);
  }

  return { connect, ack, check };
}

module.exports = { helpers };
