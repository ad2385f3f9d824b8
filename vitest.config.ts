import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The seeded chaos soak (about 5 minutes) runs on its own: `npm run test:chaos` (CI runs both).
    exclude: process.env.RS_SOAK === '1' ? ['**/node_modules/**'] : ['**/node_modules/**', 'test/e2e/farm-chaos.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // One test file at a time: render tests already keep both cores busy with ffmpeg, and the
    // farm tests assert failure-detection times that a starved event loop would distort.
    maxWorkers: 1,
    fileParallelism: false,
    reporters: ['default']
  }
})
