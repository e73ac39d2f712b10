import { defineConfig } from 'vitest/config';

// Unit tests: a fake socket and fake timers, no network.
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts'],
    environment: 'node',
    testTimeout: 10_000,
  },
});
