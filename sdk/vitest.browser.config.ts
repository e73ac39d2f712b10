import { defineConfig } from 'vitest/config';

// Browser test: the demo page in headless Chromium (playwright-core, Debian's
// /usr/bin/chromium) against the real Go server started by the global setup.
export default defineConfig({
  test: {
    include: ['test/browser/**/*.test.ts'],
    environment: 'node',
    globalSetup: ['test/support/global-setup.ts'],
    // Two files at a time (each starts its own Chromium): the suite is mostly waiting, and a
    // reload must still land within the server's 2 s disconnect grace on a 2-core machine.
    fileParallelism: true,
    maxWorkers: 2,
    minWorkers: 1,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
