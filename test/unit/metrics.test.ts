/** The farm's figures (agent/metrics.ts), pure: counters that only grow, failures charged to the node that held the chunk, averages and ratios. */
import { describe, expect, it } from 'vitest'
import { Registry } from 'prom-client'
import { FarmFigures, registerFarmMetrics, type JobFacts, type NodeFacts } from '../../agent/metrics.ts'
import { parsePromText, sampleValue } from '../helpers/prom-text.ts'

const T0 = Date.parse('2026-03-02T10:00:00Z')
const A = '12D3KooWAAAA'; const B = '12D3KooWBBBB'; const C = '12D3KooWCCCC'

type Chunk = JobFacts['chunks'][number]
const chunk = (i: number, c: Partial<Chunk> = {}): Chunk => ({ id: `c${i}`, status: 'queued', attempts: 0, framesDone: 0, frameRange: [i * 100, (i + 1) * 100], ...c })
const job = (jobId: string, status: string, chunks: Chunk[], extra: Partial<JobFacts> = {}): JobFacts =>
  ({ jobId, status, frames: chunks.length * 100, framesDone: chunks.reduce((n, c) => n + c.framesDone, 0), fps: 0, actualCost: 0, chunks, ...extra })
const nodes: NodeFacts[] = [
  { peerId: A, name: 'alpha', self: true, state: 'alive', load: { cpuPct: 50, memUsedBytes: 4e9, memTotalBytes: 16e9 }, info: { cpu: { cores: 8 }, slots: 1, costPerHour: 0.5 } },
  { peerId: B, name: 'beta', state: 'alive', lastHeardMs: T0 - 400, load: { cpuPct: 30, memUsedBytes: 2e9, memTotalBytes: 8e9, gpuPct: 40 }, info: { cpu: { cores: 4 }, slots: 2, costPerHour: 1.25 } },
  { peerId: C, name: 'editor', state: 'alive', lastHeardMs: T0 - 100, load: { cpuPct: 10, memUsedBytes: 1e9, memTotalBytes: 8e9 }, info: { cpu: { cores: 4 }, slots: 0, costPerHour: 0.1 } }
]
const at = (f: FarmFigures, jobs: JobFacts[], nowMs = T0, ns = nodes, paused: string[] = []) => f.compute({ jobs, nodes: ns, paused, nowMs, selfUptimeSeconds: 99 })

describe('FarmFigures', () => {
  it('farm-wide resources: live members only, GPU over those that report one, hourly rate of the members that render', () => {
    const f = at(new FarmFigures(), [], T0, [...nodes, { peerId: 'dead1', name: 'gone', state: 'dead', load: { cpuPct: 100, memUsedBytes: 9e9, memTotalBytes: 9e9 }, info: { slots: 1, costPerHour: 9 } }])
    expect([f.activeNodes, f.totalNodes, f.cpuPct, f.gpuPct, f.memUsedBytes, f.memTotalBytes, f.hourlyRateUsd]).toEqual([3, 4, 30, 40, 7e9, 32e9, 1.75])
    expect(f.nodes.find((n) => n.name === 'gone')).toMatchObject({ state: 'dead', uptimeSeconds: 0 })
  })

  it('follows a job: frames and chunks counted once each, active chunks per node, fps and queue while it runs', () => {
    const figures = new FarmFigures()
    let f = at(figures, [job('j', 'running', [chunk(0, { status: 'leased', node: A, framesDone: 40 }), chunk(1, { status: 'leased', node: B, framesDone: 10 }), chunk(2)], { fps: 33 })])
    expect([f.fps, f.queueLength, f.counters.framesRendered, f.counters.chunksCompleted, f.jobs.running]).toEqual([33, 1, 50, 0, 1])
    expect(f.nodes.map((n) => n.activeChunks)).toEqual([1, 1, 0])
    // The same record seen again (a scrape and an event) counts nothing twice.
    figures.observe('job', job('j', 'running', [chunk(0, { status: 'done', node: A, framesDone: 100, startedAt: T0, endedAt: T0 + 4000 }), chunk(1, { status: 'leased', node: B, framesDone: 60 }), chunk(2, { status: 'leased', node: A })]))
    f = at(figures, [job('j', 'running', [chunk(0, { status: 'done', node: A, framesDone: 100, startedAt: T0, endedAt: T0 + 4000 }), chunk(1, { status: 'leased', node: B, framesDone: 60 }), chunk(2, { status: 'leased', node: A })])])
    expect([f.counters.framesRendered, f.counters.chunksCompleted, f.queueLength]).toEqual([160, 1, 0])
    expect(f.averageFrameSeconds).toBe(0.04)
    // Progress events (no attempts in them) move frames too.
    figures.observe('progress', { jobId: 'j', chunks: [{ id: 'c1', status: 'leased', node: B, framesDone: 90 }, { id: 'c2', status: 'leased', node: A, framesDone: 5 }] })
    expect(at(figures, []).counters.framesRendered).toBe(195)
    const done = job('j', 'done', [0, 1, 2].map((i) => chunk(i, { status: 'done', node: i === 1 ? B : A, framesDone: 100, startedAt: T0, endedAt: T0 + 4000 })), { actualCost: 0.003, startedAt: new Date(T0).toISOString(), completedAt: new Date(T0 + 12_500).toISOString() })
    f = at(figures, [done])
    expect(f.counters).toEqual({ jobsSucceeded: 1, jobsFailed: 0, jobsCancelled: 0, chunksCompleted: 3, chunkErrors: 0, chunkRetries: 0, framesRendered: 300 })
    expect([f.totalCostUsd, f.costPerFrameUsd, f.averageJobSeconds, f.rates.success, f.fps]).toEqual([0.003, 0.00001, 12.5, 1, 0])
    expect(f.nodes.map((n) => n.completedChunks)).toEqual([2, 1, 0])
    // Counters keep their value when the job drops out of the list (the newest 200 are listed).
    expect(at(figures, []).counters.jobsSucceeded).toBe(1)
    expect(at(figures, []).totalCostUsd).toBe(0.003)
  })

  it('charges each failed attempt to the node that held the chunk, even when the next record already shows another node', () => {
    const figures = new FarmFigures()
    at(figures, [job('j', 'running', [chunk(0, { status: 'leased', node: B })])])
    // B failed it; by the time the record is seen the chunk is leased to A.
    at(figures, [job('j', 'running', [chunk(0, { status: 'leased', node: A, attempts: 1 })])])
    // A's lease expired: the record keeps A as the last node while it waits in the queue.
    let f = at(figures, [job('j', 'running', [chunk(0, { status: 'queued', node: A, attempts: 2 })])])
    expect(f.nodes.map((n) => n.failedChunks)).toEqual([1, 1, 0])
    expect([f.counters.chunkErrors, f.counters.chunkRetries]).toEqual([2, 2])
    // The third failure is the last: an error, not a retry; the job fails.
    f = at(figures, [job('j', 'failed', [chunk(0, { status: 'failed', node: B, attempts: 3 })])])
    expect([f.counters.chunkErrors, f.counters.chunkRetries, f.counters.jobsFailed]).toEqual([3, 2, 1])
    expect(f.nodes.map((n) => n.failedChunks)).toEqual([1, 2, 0])
    expect([f.rates.success, f.rates.error]).toEqual([0, 1])
  })

  it('believes the attempt errors when they name the node ("name: reason"), even for attempts it never saw', () => {
    const figures = new FarmFigures()
    at(figures, [job('j', 'running', [chunk(0, { status: 'leased', node: A })])])
    const f = at(figures, [job('j', 'running', [chunk(0, { status: 'leased', node: A, attempts: 2, errors: ['beta: ffmpeg exited 1', 'editor: lease expired (no progress for 15 s)'] })])])
    expect(f.nodes.map((n) => n.failedChunks)).toEqual([0, 1, 1])
  })

  it('a job first seen already ended (agent restart) counts its history once', () => {
    const figures = new FarmFigures()
    const f = at(figures, [job('old', 'done', [chunk(0, { status: 'done', node: B, attempts: 1, framesDone: 100 })], { actualCost: 0.5 }), job('x', 'cancelled', [chunk(0)])])
    expect(f.counters).toEqual({ jobsSucceeded: 1, jobsFailed: 0, jobsCancelled: 1, chunksCompleted: 1, chunkErrors: 1, chunkRetries: 1, framesRendered: 100 })
    expect([f.rates.retry, f.rates.error]).toEqual([1, 0.5])
    expect(at(figures, [job('old', 'done', [chunk(0, { status: 'done', node: B, attempts: 1, framesDone: 100 })], { actualCost: 0.5 })]).counters.jobsSucceeded).toBe(1)
  })

  it('deadline misses: of the ended jobs with a deadline, those failed or done after it', () => {
    const iso = (ms: number): string => new Date(ms).toISOString()
    const f = at(new FarmFigures(), [
      job('early', 'done', [], { deadline: iso(T0), completedAt: iso(T0 - 1) }),
      job('late', 'done', [], { deadline: iso(T0), completedAt: iso(T0 + 1) }),
      job('broke', 'failed', [], { deadline: iso(T0 + 9e6) }),
      job('nodl', 'done', [], { completedAt: iso(T0) }),
      job('running', 'running', [], { deadline: iso(T0 - 1) })
    ])
    expect(f.deadlineMissRate).toBe(0.6667)
  })

  it('per-node uptime: this agent from its start, others from when this agent saw them come alive; heartbeat age; paused', () => {
    const figures = new FarmFigures(() => T0 - 30_000)
    figures.observe('member', { peerId: B, to: 'alive' })
    const f = at(figures, [], T0, nodes, [C])
    expect(f.nodes.map((n) => [n.name, n.uptimeSeconds, n.lastHeartbeatSeconds, n.paused])).toEqual([['alpha', 99, 0, false], ['beta', 30, 0.4, false], ['editor', 0, 0.1, true]])
    figures.observe('member', { peerId: B, to: 'dead' })
    expect(at(figures, [], T0 + 5000).nodes[1]!.uptimeSeconds).toBe(0)
  })

  it('registers every figure on a prom-client registry, read once per scrape, valid exposition text', async () => {
    const reg = new Registry()
    const figures = new FarmFigures()
    let reads = 0
    registerFarmMetrics(reg, () => { reads++; return at(figures, [job('j', 'running', [chunk(0, { status: 'leased', node: B, framesDone: 7 })], { fps: 12.5 })]) })
    const text = parsePromText(await reg.metrics())
    expect(reads).toBe(1)
    expect(sampleValue(text, 'renderswarm_fps')).toBe(12.5)
    expect(sampleValue(text, 'renderswarm_frames_rendered_total')).toBe(7)
    expect(sampleValue(text, 'renderswarm_node_active_chunks', { node: 'beta', peer: B })).toBe(1)
    expect(sampleValue(text, 'renderswarm_jobs', { status: 'running' })).toBe(1)
    expect(sampleValue(text, 'renderswarm_nodes', { state: 'alive' })).toBe(3)
    expect(text.get('renderswarm_chunks_completed_total')!.type).toBe('counter')
    await reg.metrics()
    expect(reads).toBe(2)
  })
})
