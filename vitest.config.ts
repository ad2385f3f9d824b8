import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // One test file at a time: render tests already keep both cores busy with ffmpeg, and the
    // farm tests assert failure-detection times that a starved event loop would distort.
    maxWorkers: 1,
    fileParallelism: false,
    reporters: ['default']
  }
})
