// Vitest global setup of the integration and browser suites: build the Go server once,
// start it, and hand its URL to the tests (inject('serverUrl')).
import type { TestProject } from 'vitest/node';
import { buildServer, SERVER_ENV, startServer } from './server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    serverUrl: string;
    serverBinary: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const { binary, cleanup } = buildServer();
  const server = await startServer(binary, SERVER_ENV);
  project.provide('serverUrl', server.url);
  project.provide('serverBinary', binary);
  return async () => {
    await server.stop();
    if (process.env.RTM_TEST_SERVER_LOGS) process.stdout.write(server.logs());
    cleanup();
  };
}
