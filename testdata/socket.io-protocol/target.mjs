// A mocha root hook plugin for the Socket.IO protocol test suite
// (test-suite/, kept as fetched): the suite talks to http://localhost:3000;
// this sends its HTTP requests and websockets to CONFORMANCE_URL instead
// (the server conformance_test.go starts on a free port).
const target = process.env.CONFORMANCE_URL;
if (!target) {
  throw new Error("CONFORMANCE_URL is not set (run the suite through go test -run TestSocketIOProtocolSuite)");
}
const wsTarget = target.replace(/^http/, "ws");

const retarget = (url) =>
  String(url)
    .replace(/^http:\/\/localhost:3000/, target)
    .replace(/^ws:\/\/localhost:3000/, wsTarget);

export const mochaHooks = {
  beforeAll() {
    const fetch = globalThis.fetch;
    globalThis.fetch = (url, init) => fetch(retarget(url), init);
    const WebSocket = globalThis.WebSocket;
    globalThis.WebSocket = class extends WebSocket {
      constructor(url, ...rest) {
        super(retarget(url), ...rest);
      }
    };
  },
};
