import { defineConfig } from 'vitest/config';

// Integration tests: the SDK in Node (real socket.io-client 4.8) against the real Go
// server, which the global setup builds from the repository root and starts.
export default defineConfig({
  test: {
    include: ['test/integration/**/*.test.ts'],
    environment: 'node',
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
