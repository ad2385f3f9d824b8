/**
 * Render limits (M34) on real ffmpeg processes: a render over its memory, CPU-time, wall-time or
 * file-size limit fails with a reason naming the limit; a nearly full disk refuses the run before
 * ffmpeg starts; ffmpeg has no network (not even loopback); and an agent whose render blows its
 * memory limit fails that job and keeps answering its API.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readdir, stat, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import path from 'node:path'
import { locateFfmpeg } from '../../agent/ffmpeg.ts'
import { GLOBAL_OPTIONS, type FfmpegInvocation } from '../../agent/render/invocation.ts'
import { isolation, limitedFfmpeg, renderLimits, type RenderLimits } from '../../agent/render/limits.ts'
import { runInvocation, RenderError } from '../../agent/render/run.ts'
import { BIN, startSoloAgent, type SoloAgent } from '../helpers/agents.ts'
import { cleanupTmp, run, tmpDir } from '../helpers/media.ts'
import { waitFor } from '../helpers/wait.ts'

const MiB = 1024 * 1024
let dir: string
let ffmpeg: string
const iso = isolation()
const ci = process.env.CI === 'true'
const canLimit = iso.prlimit !== undefined
if (!canLimit && ci) throw new Error('CI=true but prlimit is missing: the render limits cannot be tested')

const base: RenderLimits = { memoryBytes: 0, timeMs: 60_000, cpuSeconds: 0, maxFileBytes: 0, minFreeBytes: 0, noNetwork: true }
/** testsrc2 (or another lavfi source) of `size` for `seconds`, encoded with ffv1 into out. */
function synth (out: string, size: string, seconds: number, extra: string[] = [], source = 'testsrc2'): FfmpegInvocation {
  return {
    inputs: [{ options: ['-f', 'lavfi'], file: `${source}=s=${size}:r=25:d=${seconds}` }],
    global: GLOBAL_OPTIONS,
    outputs: [{ options: [...extra, '-c:v', 'ffv1'], file: out }],
    files: []
  }
}

beforeAll(async () => {
  dir = await tmpDir('limits')
  ffmpeg = (await locateFfmpeg()).ffmpeg
})
afterAll(cleanupTmp)

describe.skipIf(!canLimit)('ffmpeg under prlimit', () => {
  it('the defaults render normally (a 1080p second fits in them)', async () => {
    const out = path.join(dir, 'ok.mkv')
    await runInvocation(synth(out, '1920x1080', 1), { ffmpeg, limits: renderLimits({}) })
    expect((await stat(out)).size).toBeGreaterThan(0)
  })

  it('a render over its memory limit fails with a reason naming the limit', async () => {
    const out = path.join(dir, 'mem.mkv')
    // ffv1 allocates a packet for the worst case of a 4K frame (over 1 GB): refused under 300 MiB.
    const err = await runInvocation(synth(out, '4096x2160', 1, ['-slices', '4'], 'color'), { ffmpeg, limits: { ...base, memoryBytes: 300 * MiB, timeMs: 30_000 } }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RenderError)
    expect((err as Error).message).toMatch(/ran out of its memory limit of 300 MiB/)
  })

  it('a render over its wall-clock limit is stopped and says so', async () => {
    const began = Date.now()
    const err = await runInvocation(synth(path.join(dir, 'time.mkv'), '1280x720', 3600), { ffmpeg, limits: { ...base, timeMs: 1500 } }).catch((e: unknown) => e)
    expect((err as Error).message).toMatch(/ran past its time limit of 2 s and was stopped/)
    expect(Date.now() - began).toBeLessThan(30_000)
  })

  it('a render over its CPU-time limit is stopped by the kernel (SIGXCPU) and says so', async () => {
    const err = await runInvocation(synth(path.join(dir, 'cpu.mkv'), '1920x1080', 3600), { ffmpeg, limits: { ...base, cpuSeconds: 1 } }).catch((e: unknown) => e)
    expect((err as Error).message).toMatch(/used up its CPU time limit of 1 s/)
  })

  it('a render writing past the per-chunk file limit is stopped (SIGXFSZ) and says so', async () => {
    const out = path.join(dir, 'big.mkv')
    const err = await runInvocation(synth(out, '1920x1080', 60), { ffmpeg, limits: { ...base, maxFileBytes: 2 * MiB } }).catch((e: unknown) => e)
    expect((err as Error).message).toMatch(/over the 2 MiB per-chunk disk limit/)
    expect((await stat(out)).size).toBeLessThanOrEqual(2 * MiB)
  })
})

describe('isolation before and around ffmpeg', () => {
  it('a nearly full disk refuses the run before ffmpeg starts', async () => {
    const out = path.join(dir, 'full', 'x.mkv')
    let started = false
    const err = await runInvocation(synth(out, '320x240', 1), { ffmpeg, limits: { ...base, minFreeBytes: 2 ** 50 }, onStart: () => { started = true } }).catch((e: unknown) => e)
    expect((err as Error).message).toMatch(/MiB free, under the \d+ MiB this node keeps free; the render was not started/)
    expect(started).toBe(false)
    expect(await readdir(path.dirname(out))).toEqual([])
  })

  it.skipIf(iso.unshare === undefined && !ci)('ffmpeg has no network: a loopback HTTP server the test runs is never reached', async () => {
    let hits = 0
    const server = createServer((_req, res) => { hits++; res.end('x') })
    await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
    const port = (server.address() as { port: number }).port
    try {
      // The same wrapper run.ts uses, with a URL input (compiled graphs never have one; this
      // proves the namespace, not the protocol whitelist).
      const exe = await limitedFfmpeg(ffmpeg, { ...base, noNetwork: true })
      const r = await run(exe, ['-nostdin', '-hide_banner', '-i', `http://127.0.0.1:${port}/x.mkv`, '-f', 'null', '-'], { timeout: 30_000 }).catch((e: { stderr?: string }) => e)
      expect(String((r as { stderr?: string }).stderr)).toMatch(/Network is unreachable|Connection refused|Cannot assign/i)
      expect(hits).toBe(0)
      // Control: without the namespace the same command reaches the server.
      await run(ffmpeg, ['-nostdin', '-hide_banner', '-i', `http://127.0.0.1:${port}/x.mkv`, '-f', 'null', '-'], { timeout: 30_000 }).catch(() => {})
      expect(hits).toBeGreaterThan(0)
    } finally {
      server.close()
    }
  })
})

describe.skipIf(!canLimit)('an agent whose render blows its memory limit', () => {
  let solo: SoloAgent | undefined
  let stateDir: string
  let api: { url: string; token: string }
  let log: string[] = []
  const getJson = async <T>(p: string): Promise<T> => await (await fetch(`${api.url}${p}`, { headers: { authorization: `Bearer ${api.token}` } })).json() as T

  beforeAll(async () => {
    stateDir = path.join(dir, 'agent')
    // 1 GiB of address space: enough for the 720p benchmark, far too little for a 4096×2160 ffv1 frame.
    solo = await startSoloAgent(stateDir, [], { RENDERSWARM_RENDER_MEMORY_MB: '1024' })
    ;({ api, log } = solo)
  }, 90_000)

  afterAll(async () => {
    await solo?.stop()
    if (process.env.RS_DEBUG === '1') console.log(log.join('\n'))
  })

  // The attempt fails with the reason; whether the job then fails or waits for another node is
  // the scheduler's retry policy, not this test's concern.
  it('fails the render attempt with the reason and goes on answering', async () => {
    const timeline = path.join(dir, 'huge.json')
    await writeFile(timeline, JSON.stringify({
      schema: 'farm.timeline/1', fps: { num: 25, den: 1 }, width: 4096, height: 2160, duration: 10, assets: {},
      video: [{ clips: [{ id: 'bg', type: 'color', color: '#304050', start: 0, length: 10 }] }]
    }))
    const sub = await run(process.execPath, [BIN, 'submit', timeline, '-o', path.join(dir, 'huge.mkv'), '--preset', 'ffv1', '--detach', '--json', '--state-dir', stateDir], { timeout: 120_000 })
    const jobId = (JSON.parse(sub.stdout) as { jobId: string }).jobId
    const errors = await waitFor(async () => {
      const j = (await getJson<{ job: { status: string; chunks: Array<{ errors?: string[] }> } }>(`/v1/jobs/${jobId}`)).job
      expect(j.status).not.toBe('done')
      const e = j.chunks.flatMap((c) => c.errors ?? [])
      return e.length > 0 ? e : undefined
    }, 90_000, 'a failed attempt', 500)
    for (const e of errors) expect(e).toMatch(/ran out of its memory limit of 1024 MiB/)
    expect(solo!.child.exitCode).toBeNull()
    // The local API on the same agent: a 1 MiB body is cut off at 64 KiB, never read whole.
    const big = await fetch(`${api.url}/v1/jobs`, { method: 'POST', headers: { authorization: `Bearer ${api.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ timeline: 'x'.repeat(1024 * 1024) }) })
      .then((r) => r.status, () => 'reset')
    expect(big === 'reset' || (typeof big === 'number' && big >= 400)).toBe(true)
    const status = await fetch(`${api.url}/v1/status`, { headers: { authorization: `Bearer ${api.token}` } })
    expect(status.status).toBe(200)
    expect(((await status.json()) as { nodes?: unknown }).nodes).toBeDefined()
  })
})
