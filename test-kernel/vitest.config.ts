// The real-kernel lane's own vitest config: run by scripts/kernel-lane/run.sh as
// `vitest run --root test-kernel` against an agent inside a qemu guest. The repo's root vitest.config.ts
// includes only packages/*/src/**/*.test.ts and test/**/*.test.ts, so `pnpm test` never picks these up.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const repo = fileURLToPath(new URL('..', import.meta.url));

export default defineConfig({
  // keep vite's cache with the lane's other outputs (git-ignored), not in test-kernel/node_modules
  cacheDir: `${repo}.cache/kernel-lane/vite`,
  resolve: {
    // the built packages, as the lane tests what `pnpm build` produced
    alias: {
      '@kindling/sdk': `${repo}packages/sdk/dist/index.js`,
      '@kindling/protocol': `${repo}packages/protocol/dist/index.js`,
    },
  },
  test: {
    include: ['**/*.test.ts'],
    // software-emulated guest: each lvm2 command takes ~0.5-1.5 s, a 1 GiB thick copy ~8 s
    testTimeout: 180_000,
    hookTimeout: 180_000,
    // one file per backend can run side by side (separate VGs / share); the guest has 2 vCPUs
    maxWorkers: Number(process.env.KINDLING_KERNEL_WORKERS ?? 3),
    fileParallelism: true,
    // a scenario that fails is a lane failure: no retries that would hide flakiness
    retry: 0,
  },
});
