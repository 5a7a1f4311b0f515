import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Storage tests share loop devices and VGs; two cores do not gain from wide parallelism.
    maxWorkers: 2,
    reporters: ['default', './test/support/summary-reporter.ts'],
    setupFiles: ['./test/support/client-token.ts'],
  },
});
