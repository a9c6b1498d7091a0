import { defineConfig } from 'vitest/config';

export default defineConfig({
  ssr: { resolve: { conditions: ['source'] } },
  test: {
    projects: [
      { extends: true, test: { name: 'codec', include: ['packages/codec/test/**/*.test.ts'] } },
      {
        extends: true,
        test: { name: 'container', include: ['packages/container/test/**/*.test.ts'] },
      },
      { extends: true, test: { name: 'cli', include: ['packages/cli/test/**/*.test.ts'] } },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
    ],
  },
});
