import { defineConfig } from 'vitest/config';

// Browser test: the demo page in headless Chromium (playwright-core, Debian's
// /usr/bin/chromium) against the real Go server started by the global setup.
export default defineConfig({
  test: {
    include: ['test/browser/**/*.test.ts'],
    environment: 'node',
    globalSetup: ['test/support/global-setup.ts'],
    // One file at a time: each starts its own Chromium, and a reload must land within the
    // server's 2 s disconnect grace even on a loaded machine.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
