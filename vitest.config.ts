import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Render tests start many ffmpeg processes; 2-core CI machines do better with few files at once.
    maxWorkers: 2,
    reporters: ['default']
  }
})
