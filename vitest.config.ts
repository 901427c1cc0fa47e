import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Fail loudly when dist/ (which integration tests run) is older than the sources.
    globalSetup: ['test/setup/dist-fresh.ts'],
    // Integration tests start real node processes; give them room but keep them bounded.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two cores: run integration files one at a time so clusters don't starve each other.
    fileParallelism: false,
  },
});
