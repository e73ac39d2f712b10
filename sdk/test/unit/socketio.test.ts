// The fake socket's assumptions, checked against the real socket.io-client 4.8 (no server:
// a closed loopback port, and packets handed to the socket directly).
import { afterEach, describe, expect, it } from 'vitest';
import { RealtimeClient, type RealtimeError } from '../../src/index.js';
import { freePort } from '../support/server.js';

const clients: RealtimeClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.disconnect();
});

async function closedUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`;
}

describe('with the real socket.io-client', () => {
  it('sends the token in the CONNECT packet, asking a token function each time', async () => {
    let n = 0;
    const client = new RealtimeClient(await closedUrl(), { autoConnect: false, token: () => `jwt-${++n}` });
    clients.push(client);
    const socket = client.socket as any;
    const packets: any[] = [];
    socket.packet = (p: unknown) => packets.push(p);
    socket.onopen(); // what socket.io-client runs when an Engine.IO connection opens
    socket.onopen();
    expect(packets.map((p) => [p.type, p.data])).toEqual([
      [0, { token: 'jwt-1' }],
      [0, { token: 'jwt-2' }],
    ]);
    expect(socket.io.opts.query ?? {}).not.toHaveProperty('token');
  });

  it('takes a CONNECT_ERROR for a refusal: unauthorized, no retry', async () => {
    const client = new RealtimeClient(await closedUrl(), { autoConnect: false });
    clients.push(client);
    const p = client.connect();
    (client.socket as any).onpacket({ type: 4, nsp: '/', data: { message: 'unauthorized' } });
    await expect(p).rejects.toMatchObject({ code: 'unauthorized' });
    expect(client.status).toBe('disconnected');
    expect(client.socket.active).toBe(false);
  });

  it('alternates transports on the Manager between failed attempts', async () => {
    const client = new RealtimeClient(await closedUrl(), {
      autoConnect: false,
      reconnectionDelayMs: 10,
      reconnectionDelayMaxMs: 10,
      randomizationFactor: 0,
      connectTimeoutMs: 2000,
    });
    clients.push(client);
    const seen: Array<[number, string[]]> = [];
    const errors: RealtimeError[] = [];
    client.on('connect_error', (e) => errors.push(e));
    const done = new Promise<void>((resolve) => {
      client.on('reconnecting', (attempt) => {
        seen.push([attempt, [...(client.socket.io!.opts!.transports ?? [])]]);
        if (attempt === 2) resolve();
      });
    });
    void client.connect().catch(() => undefined);
    await done;
    expect(seen).toEqual([
      [1, ['polling', 'websocket']],
      [2, ['websocket']],
    ]);
    expect(errors.length).toBeGreaterThanOrEqual(1);
    expect(errors.every((e) => e.code === 'connect_failed')).toBe(true);
    expect(client.status).toBe('reconnecting');
  });
});
