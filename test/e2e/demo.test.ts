/**
 * `npm start` (renderswarm demo): three real agent processes on loopback form a farm and
 * render the sample; the output is the timeline's frames, identical to a one-machine render.
 */
import { describe, expect, it } from 'vitest'
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { locateFfmpeg } from '../../agent/ffmpeg.ts'
import { cleanupTmp, frameHashes, tmpDir } from '../helpers/media.ts'

const run = promisify(execFile)
const BIN = fileURLToPath(new URL('../../bin/renderswarm.js', import.meta.url))

describe('npm start', () => {
  it('a three-agent farm on this machine renders the sample, identical to the local render, then stops its agents', async () => {
    const dir = await tmpDir('demo')
    try {
      const r = await run(process.execPath, [BIN, 'demo', dir], { env: { ...process.env, RENDERSWARM_DEMO_EXIT: '1' }, timeout: 240_000 })
      expect(r.stdout).toMatch(/rendered by (demo-\w+(, )?){3} in/)
      const local = path.join(dir, 'local.mkv')
      await run(process.execPath, [BIN, 'render', path.join(dir, 'sample.timeline.json'), '-o', local, '--chunks', '1'], { timeout: 240_000 })
      const tools = await locateFfmpeg()
      const farm = await frameHashes(tools.ffmpeg, path.join(dir, 'sample-farm.mkv'))
      expect(farm.length).toBe(600)
      expect(farm).toEqual(await frameHashes(tools.ffmpeg, local))
      // The agents were stopped: none of them still has its API file.
      for (const n of ['demo-one', 'demo-two', 'demo-three']) await expect(run('test', ['-e', path.join(dir, 'farm', n, 'api.json')])).rejects.toThrow()
    } finally {
      await cleanupTmp()
    }
  }, 300_000)
})
