/**
 * Prometheus /metrics and `status --json` (spec M32) from a real agent process on loopback
 * rendering the sample timeline with real ffmpeg: every figure of the spec's list is exposed,
 * the exposition parses strictly, counters rise while the job runs and end where the job did,
 * and the status JSON carries the same figures. Also the strict parser refuses malformed text.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import path from 'node:path'
import { locateFfmpeg } from '../../agent/ffmpeg.ts'
import { writeSample } from '../../agent/sample.ts'
import { cleanupTmp, run, tmpDir } from '../helpers/media.ts'
import { parsePromText, PromTextError, sampleValue, type Family } from '../helpers/prom-text.ts'
import { BIN, startSoloAgent, type SoloAgent } from '../helpers/agents.ts'
import { waitFor } from '../helpers/wait.ts'

/** The spec's list (M32), as metric names: farm-wide, then per node (label node). */
const FARM = [
  'renderswarm_fps', 'renderswarm_frame_time_seconds', 'renderswarm_queue_length', 'renderswarm_active_nodes',
  'renderswarm_cpu_percent', 'renderswarm_gpu_percent', 'renderswarm_memory_used_bytes', 'renderswarm_memory_total_bytes',
  'renderswarm_hourly_rate_usd', 'renderswarm_cost_usd_total', 'renderswarm_cost_per_frame_usd',
  'renderswarm_jobs_succeeded_total', 'renderswarm_jobs_failed_total', 'renderswarm_jobs_cancelled_total',
  'renderswarm_chunks_completed_total', 'renderswarm_chunk_errors_total', 'renderswarm_chunk_retries_total', 'renderswarm_frames_rendered_total',
  'renderswarm_job_success_ratio', 'renderswarm_chunk_error_ratio', 'renderswarm_chunk_retry_ratio',
  'renderswarm_job_duration_seconds', 'renderswarm_deadline_miss_ratio', 'renderswarm_nodes', 'renderswarm_jobs'
]
const PER_NODE = [
  'renderswarm_node_up', 'renderswarm_node_accepting', 'renderswarm_node_paused', 'renderswarm_node_cpu_percent', 'renderswarm_node_gpu_percent',
  'renderswarm_node_memory_used_bytes', 'renderswarm_node_memory_total_bytes', 'renderswarm_node_cpu_cores', 'renderswarm_node_slots',
  'renderswarm_node_active_chunks', 'renderswarm_node_completed_chunks_total', 'renderswarm_node_failed_chunks_total',
  'renderswarm_node_uptime_seconds', 'renderswarm_node_last_heartbeat_seconds'
]
const COUNTERS = FARM.concat(PER_NODE).filter((n) => n.endsWith('_total'))

describe('the strict Prometheus text parser', () => {
  const ok = '# HELP a_total A counter\n# TYPE a_total counter\na_total{x="1",y="q\\"uote"} 3\n# TYPE b gauge\nb -1.5e3\nb{z="n"} NaN\nb{z="m"} Nan\nb{z="i"} +Inf\n'
  it('reads families, labels with escapes and values', () => {
    const f = parsePromText(ok)
    expect(f.get('a_total')).toEqual({ name: 'a_total', type: 'counter', help: 'A counter', samples: [{ name: 'a_total', labels: { x: '1', y: 'q"uote' }, value: 3 }] })
    expect(sampleValue(f, 'b', { z: 'n' })).toBeNaN()
    expect(f.get('b')!.samples.map((s) => s.value)).toEqual([-1500, NaN, NaN, Infinity])
  })
  it.each([
    ['a value that is not a number', '# TYPE a gauge\na 1,5\n'],
    ['a value that is not NaN', '# TYPE a gauge\na NaNa\n'],
    ['an unclosed label value', '# TYPE a gauge\na{x="1} 1\n'],
    ['a bad escape', '# TYPE a gauge\na{x="\\t"} 1\n'],
    ['a label given twice', '# TYPE a gauge\na{x="1",x="2"} 1\n'],
    ['a duplicate series', '# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n'],
    ['a bad metric name', '# TYPE 1a gauge\n'],
    ['a bad label name', '# TYPE a gauge\na{1x="1"} 1\n'],
    ['an unknown type', '# TYPE a meter\n'],
    ['TYPE after samples', 'a 1\n# TYPE a gauge\n'],
    ['a family split in two', '# TYPE a gauge\na{x="1"} 1\n# TYPE b gauge\nb 1\na{x="2"} 1\n'],
    ['a negative counter', '# TYPE a_total counter\na_total -1\n'],
    ['no final newline', '# TYPE a gauge\na 1'],
    ['a missing value', '# TYPE a gauge\na{x="1"}\n'],
    ['HELP without a family', '# HELP a lonely\n']
  ])('refuses %s', (_what, text) => {
    expect(() => parsePromText(text)).toThrow(PromTextError)
  })
})

let dir: string
let solo: SoloAgent | undefined
let log: string[] = []
let stateDir: string
let api: { url: string; token: string }

async function scrape (): Promise<Map<string, Family>> {
  const res = await fetch(`${api.url}/metrics`, { headers: { authorization: `Bearer ${api.token}` } })
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  return parsePromText(await res.text())
}

async function getJson<T> (route: string): Promise<T> {
  const res = await fetch(`${api.url}${route}`, { headers: { authorization: `Bearer ${api.token}` } })
  if (!res.ok) throw new Error(`${route}: HTTP ${res.status}`)
  return await res.json() as T
}

function expectEveryFigure (f: Map<string, Family>): void {
  for (const name of FARM) expect(f.has(name), name).toBe(true)
  for (const name of PER_NODE) {
    expect(f.has(name), name).toBe(true)
    expect(f.get(name)!.samples.some((s) => s.labels.node === 'solo' && /^12D3KooW\w+$/.test(s.labels.peer ?? '')), `${name}{node="solo"}`).toBe(true)
  }
  for (const name of COUNTERS) expect(f.get(name)!.type, name).toBe('counter')
  for (const name of FARM.concat(PER_NODE).filter((n) => !n.endsWith('_total'))) expect(f.get(name)!.type, name).toBe('gauge')
  for (const fam of f.values()) expect(fam.help, `HELP of ${fam.name}`).toBeTruthy()
  for (const name of FARM.concat(PER_NODE)) for (const s of f.get(name)!.samples) expect(Number.isFinite(s.value) && s.value >= 0, `${name} ${s.value}`).toBe(true)
}

interface JobView { jobId: string; status: string; frames: number; chunks: Array<{ status: string }> }

describe('an agent\'s /metrics while it renders', () => {
  beforeAll(async () => {
    dir = await tmpDir('metrics')
    stateDir = path.join(dir, 'solo')
    // 1 s chunks: the sample renders at about 200 frames/s here on a quiet machine, so its 600 frames make 3 chunks.
    solo = await startSoloAgent(stateDir, ['--cost-per-hour', '0.5', '--chunk-seconds', '1'])
    ;({ api, log } = solo)
  }, 60_000)

  afterAll(async () => {
    await solo?.stop()
    if (process.env.RS_DEBUG === '1') console.log(log.join('\n'))
    await cleanupTmp()
  })

  it('needs the token', async () => {
    expect((await fetch(`${api.url}/metrics`)).status).toBe(401)
    expect((await fetch(`${api.url}/metrics`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401)
  })

  it('exposes every figure of the spec before, during and after a real render; counters rise with the job', async () => {
    const before = await scrape()
    expectEveryFigure(before)
    for (const name of ['renderswarm_jobs_succeeded_total', 'renderswarm_chunks_completed_total', 'renderswarm_frames_rendered_total', 'renderswarm_cost_usd_total']) expect(sampleValue(before, name), name).toBe(0)
    expect(sampleValue(before, 'renderswarm_active_nodes')).toBe(1)
    expect(sampleValue(before, 'renderswarm_node_up', { node: 'solo' })).toBe(1)
    expect(sampleValue(before, 'renderswarm_hourly_rate_usd')).toBe(0.5)
    expect(sampleValue(before, 'renderswarm_node_cpu_cores', { node: 'solo' })).toBeGreaterThanOrEqual(1)
    expect(sampleValue(before, 'renderswarm_memory_total_bytes')).toBeGreaterThan(0)

    const timeline = await writeSample(path.join(dir, 'sample'), await locateFfmpeg())
    const out = path.join(dir, 'out.mkv')
    const sub = await run(process.execPath, [BIN, 'submit', timeline, '-o', out, '--preset', 'ffv1', '--detach', '--json', '--state-dir', stateDir], { timeout: 120_000 })
    const jobId = (JSON.parse(sub.stdout) as { jobId: string }).jobId
    const chunkCount = (await getJson<{ job: JobView }>(`/v1/jobs/${jobId}`)).job.chunks.length
    expect(chunkCount).toBeGreaterThanOrEqual(2)

    // During: scrape until the job ends; every scrape parses, counters never go down, and some
    // scrape sees the job running with frames partly rendered and a chunk active on this node.
    const seen: Array<{ frames: number; chunks: number; running: number; active: number; fps: number; queue: number }> = []
    const job = await waitFor(async () => {
      const f = await scrape()
      expectEveryFigure(f)
      seen.push({
        frames: sampleValue(f, 'renderswarm_frames_rendered_total'), chunks: sampleValue(f, 'renderswarm_chunks_completed_total'),
        running: sampleValue(f, 'renderswarm_jobs', { status: 'running' }), active: sampleValue(f, 'renderswarm_node_active_chunks', { node: 'solo' }),
        fps: sampleValue(f, 'renderswarm_fps'), queue: sampleValue(f, 'renderswarm_queue_length')
      })
      const j = (await getJson<{ job: JobView }>(`/v1/jobs/${jobId}`)).job
      return ['done', 'failed', 'cancelled'].includes(j.status) ? j : undefined
    }, 480_000, 'the job to end', 300)
    expect(job.status).toBe('done')
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i]!.frames).toBeGreaterThanOrEqual(seen[i - 1]!.frames)
      expect(seen[i]!.chunks).toBeGreaterThanOrEqual(seen[i - 1]!.chunks)
    }
    const mid = seen.filter((s) => s.running === 1 && s.frames > 0 && s.frames < job.frames)
    expect(mid.length, JSON.stringify(seen)).toBeGreaterThan(0)
    expect(seen.some((s) => s.running === 1 && s.active >= 1)).toBe(true)
    expect(seen.some((s) => s.chunks > 0 && s.chunks < chunkCount)).toBe(true)
    expect(seen.some((s) => s.queue > 0)).toBe(true)
    expect(Math.max(...seen.map((s) => s.fps)), JSON.stringify(seen)).toBeGreaterThan(0)

    // After: counters end where the job did.
    const after = await scrape()
    expectEveryFigure(after)
    expect(sampleValue(after, 'renderswarm_jobs_succeeded_total')).toBe(1)
    expect(sampleValue(after, 'renderswarm_jobs_failed_total')).toBe(0)
    expect(sampleValue(after, 'renderswarm_chunks_completed_total')).toBe(chunkCount)
    expect(sampleValue(after, 'renderswarm_node_completed_chunks_total', { node: 'solo' })).toBe(chunkCount)
    expect(sampleValue(after, 'renderswarm_frames_rendered_total')).toBe(job.frames)
    expect(sampleValue(after, 'renderswarm_jobs', { status: 'done' })).toBe(1)
    expect(sampleValue(after, 'renderswarm_queue_length')).toBe(0)
    expect(sampleValue(after, 'renderswarm_node_active_chunks', { node: 'solo' })).toBe(0)
    expect(sampleValue(after, 'renderswarm_job_success_ratio')).toBe(1)
    expect(sampleValue(after, 'renderswarm_job_duration_seconds')).toBeGreaterThan(0)
    expect(sampleValue(after, 'renderswarm_frame_time_seconds')).toBeGreaterThan(0)
    const cost = sampleValue(after, 'renderswarm_cost_usd_total')
    expect(cost).toBeGreaterThan(0)
    expect(sampleValue(after, 'renderswarm_cost_per_frame_usd')).toBeCloseTo(cost / job.frames, 8)
    expect(sampleValue(after, 'renderswarm_node_uptime_seconds', { node: 'solo' })).toBeGreaterThan(0)

    // `renderswarm status --json` carries the same figures.
    const st = await run(process.execPath, [BIN, 'status', '--json', '--state-dir', stateDir], { timeout: 60_000 })
    const m = (JSON.parse(st.stdout) as { metrics: { counters: Record<string, number>; totalCostUsd: number; costPerFrameUsd: number; averageJobSeconds: number; queueLength: number; activeNodes: number; hourlyRateUsd: number; nodes: Array<{ name: string; completedChunks: number; failedChunks: number; slots: number }> } }).metrics
    expect(m.counters).toEqual({
      jobsSucceeded: sampleValue(after, 'renderswarm_jobs_succeeded_total'), jobsFailed: sampleValue(after, 'renderswarm_jobs_failed_total'),
      jobsCancelled: sampleValue(after, 'renderswarm_jobs_cancelled_total'), chunksCompleted: sampleValue(after, 'renderswarm_chunks_completed_total'),
      chunkErrors: sampleValue(after, 'renderswarm_chunk_errors_total'), chunkRetries: sampleValue(after, 'renderswarm_chunk_retries_total'),
      framesRendered: sampleValue(after, 'renderswarm_frames_rendered_total')
    })
    expect(m.totalCostUsd).toBe(cost)
    expect(m.costPerFrameUsd).toBe(sampleValue(after, 'renderswarm_cost_per_frame_usd'))
    expect(m.averageJobSeconds).toBe(sampleValue(after, 'renderswarm_job_duration_seconds'))
    expect([m.queueLength, m.activeNodes, m.hourlyRateUsd]).toEqual([0, 1, 0.5])
    expect(m.nodes.find((n) => n.name === 'solo')).toMatchObject({ completedChunks: chunkCount, failedChunks: 0, slots: 1 })
  }, 600_000)

  it('POST /v1/policy switches "render only when idle" at run time, shows in status and metrics, and refuses bad bodies', async () => {
    const post = async (body: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
      const res = await fetch(`${api.url}/v1/policy`, { method: 'POST', headers: { authorization: `Bearer ${api.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
      return { status: res.status, json: await res.json() as Record<string, unknown> }
    }
    const idle = await post({ when: 'idle' })
    expect(idle.status).toBe(200)
    expect(idle.json.policy).toEqual({ when: 'idle', maxCpuPct: 100 })
    // Idle means five quiet minutes first; the agent started less than that ago.
    expect(idle.json.accepting).toBe(false)
    expect((await getJson<{ policy: { when: string } }>('/v1/status')).policy.when).toBe('idle')
    expect(sampleValue(await scrape(), 'renderswarm_node_accepting', { node: 'solo' })).toBe(0)
    for (const [body, field] of [[{ when: 'sometimes' }, 'when'], [{ maxCpuPct: 0 }, 'maxCpuPct'], [{ when: 'schedule' }, 'schedule'], [{}, 'policy']] as const) {
      const r = await post(body)
      expect(r.status, JSON.stringify(body)).toBe(400)
      expect(r.json.field).toBe(field)
      expect(String(r.json.message)).toMatch(new RegExp(`^${field}: `))
    }
    const always = await post({ when: 'always' })
    expect([always.status, always.json.accepting]).toEqual([200, true])
    expect(sampleValue(await scrape(), 'renderswarm_node_accepting', { node: 'solo' })).toBe(1)
  })
})
