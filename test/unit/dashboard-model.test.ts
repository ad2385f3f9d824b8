/**
 * The dashboard's pure core (ui/dashboard/src/model.ts, schemas.ts): folding SSE events into
 * the state, the cluster figures, node rows, ETA and the chunk timeline layout.
 */
import { describe, expect, it } from 'vitest'
import { activeChunks, applyEvent, chunkTimeline, clusterSummary, formatDuration, formatUsd, initialState, jobEtaSeconds, jobFraction, jobSpeed, nodeRows, suggestOutput, type DashState } from '../../ui/dashboard/src/model.ts'
import { parseEvent, type Job, type Node } from '../../ui/dashboard/src/schemas.ts'
import { requestBody } from '../../ui/dashboard/src/submit-dialog.ts'

const node = (peerId: string, name: string, over: Partial<Node> = {}): Node => ({
  peerId, name, self: false, state: 'alive', location: 'lan',
  load: { cpuPct: 50, memUsedBytes: 2e9, memTotalBytes: 8e9, runningChunks: 0 },
  info: { cpu: { model: 'x', cores: 4 }, memBytes: 8e9, gpus: [], bench: { ffv1: 40, h264: 30 }, slots: 1, costPerHour: 0.5 },
  ...over
})

const job = (jobId: string, over: Partial<Job> = {}): Job => ({
  jobId, name: `job ${jobId}`, status: 'running', preset: 'ffv1', priority: 'normal', frames: 300, framesDone: 0, fps: 0,
  chunks: [
    { id: `${jobId}-0`, frameRange: [0, 100], status: 'queued', attempts: 0, framesDone: 0 },
    { id: `${jobId}-1`, frameRange: [100, 200], status: 'queued', attempts: 0, framesDone: 0 },
    { id: `${jobId}-2`, frameRange: [200, 300], status: 'queued', attempts: 0, framesDone: 0 }
  ],
  actualCost: 0, createdAt: '2026-01-01T00:00:00.000Z', ...over
})

function farm (): DashState {
  return initialState({
    status: { farm: 'f1', peerId: 'ed', name: 'editor', nodes: { total: 4, active: 4 } },
    nodes: [node('ed', 'editor', { self: true, info: { cpu: { model: 'x', cores: 4 }, memBytes: 8e9, gpus: [], bench: {}, slots: 0, costPerHour: 0.02 } }), node('a', 'alpha'), node('b', 'beta', { info: { cpu: { model: 'x', cores: 8 }, memBytes: 8e9, gpus: [{ model: 'RTX 4090', vramBytes: 24e9 }], bench: { ffv1: 90 }, slots: 1, costPerHour: 1 } }), node('c', 'gamma')],
    jobs: [job('j1')]
  })
}

function ev (type: string, data: unknown): NonNullable<ReturnType<typeof parseEvent>> {
  const e = parseEvent(type, data)
  if (e === undefined) throw new Error(`test event ${type} did not parse`)
  return e
}

describe('dashboard model', () => {
  it('the snapshot says who is paused when the status carries the farm\'s figures', () => {
    const status = { farm: 'f1', peerId: 'ed', name: 'editor', nodes: { total: 2, active: 2 }, metrics: { nodes: [{ peerId: 'a', paused: true }, { peerId: 'b', paused: false }] } }
    expect(initialState({ status, nodes: [node('a', 'alpha'), node('b', 'beta')], jobs: [] }).paused).toEqual(['a'])
    expect(nodeRows(initialState({ status, nodes: [node('a', 'alpha'), node('b', 'beta')], jobs: [] })).map((r) => r.activity)).toEqual(['paused', 'idle'])
  })

  it('refuses malformed and unknown events at the boundary', () => {
    expect(parseEvent('progress', { jobId: 'j1', framesDone: -1, frames: 300, fps: 0, chunks: [] })).toBeUndefined()
    expect(parseEvent('progress', { jobId: 'j1', framesDone: 'many', frames: 300, fps: 0, chunks: [] })).toBeUndefined()
    expect(parseEvent('member', { peerId: 'a' })).toBeUndefined()
    expect(parseEvent('nonsense', {})).toBeUndefined()
    expect(parseEvent('paused', { peers: ['a'] })).toEqual({ type: 'paused', data: { peers: ['a'] } })
  })

  it('folds progress into its job: chunk states, nodes, frames, fps; leaves other jobs and the old state alone', () => {
    const s0 = farm()
    const s1 = applyEvent(s0, ev('progress', { jobId: 'j1', framesDone: 150, frames: 300, fps: 24, chunks: [{ id: 'j1-0', status: 'done', node: 'a', framesDone: 100 }, { id: 'j1-1', status: 'leased', node: 'b', framesDone: 50 }, { id: 'j1-2', status: 'queued', framesDone: 0 }] }))
    expect(s0.jobs[0]!.framesDone).toBe(0)
    const j = s1.jobs[0]!
    expect(j.framesDone).toBe(150)
    expect(j.fps).toBe(24)
    expect(j.chunks.map((c) => [c.status, c.node, c.framesDone])).toEqual([['done', 'a', 100], ['leased', 'b', 50], ['queued', undefined, 0]])
    expect(applyEvent(s1, ev('progress', { jobId: 'other', framesDone: 1, frames: 1, fps: 1, chunks: [] }))).toBe(s1)
  })

  it('a late progress push does not undo a finished job', () => {
    const done = applyEvent(farm(), ev('job', job('j1', { status: 'done', framesDone: 300 })))
    const after = applyEvent(done, ev('progress', { jobId: 'j1', framesDone: 200, frames: 300, fps: 10, chunks: [] }))
    expect(after.jobs[0]!.status).toBe('done')
    expect(after.jobs[0]!.framesDone).toBe(300)
  })

  it('a job event replaces its record or adds a new job first', () => {
    const s = applyEvent(applyEvent(farm(), ev('job', job('j2', { status: 'queued' }))), ev('job', job('j1', { status: 'cancelled' })))
    expect(s.jobs.map((j) => [j.jobId, j.status])).toEqual([['j2', 'queued'], ['j1', 'cancelled']])
  })

  it('member, leader, paused and worker events', () => {
    let s = applyEvent(farm(), ev('member', { peerId: 'c', to: 'dead', silentMs: 5000 }))
    expect(s.nodes.find((n) => n.peerId === 'c')!.state).toBe('dead')
    expect(applyEvent(s, ev('member', { peerId: 'zzz', to: 'alive' }))).toBe(s)
    s = applyEvent(s, ev('leader', { term: 3, leader: 'a' }))
    expect(s.leader).toBe('a')
    s = applyEvent(s, ev('paused', { peers: ['a', 'b'] }))
    expect(s.paused).toEqual(['a', 'b'])
    s = applyEvent(s, ev('worker', { running: 1 }))
    expect(s.nodes.find((n) => n.self)!.load!.runningChunks).toBe(1)
  })

  it('cluster figures: active/total, rendering nodes, queue, fps, hourly cost now and for the whole farm', () => {
    let s = applyEvent(farm(), ev('progress', { jobId: 'j1', framesDone: 20, frames: 300, fps: 30, chunks: [{ id: 'j1-0', status: 'leased', node: 'a', framesDone: 10 }, { id: 'j1-1', status: 'leased', node: 'b', framesDone: 10 }] }))
    s = applyEvent(s, ev('member', { peerId: 'c', to: 'dead' }))
    s = applyEvent(s, ev('job', job('j2', { status: 'queued' })))
    const sum = clusterSummary(s)
    expect(sum).toEqual({
      activeNodes: 3, totalNodes: 4, renderNodes: 2, renderingNodes: 2, queuedChunks: 1 + 3, waitingJobs: 1, activeJobs: 2,
      fps: 30, costPerHourNow: 1.5, costPerHourAll: 1.5
    })
  })

  it('node rows: activity, GPU, benchmark, memory %, current chunk; an editor never renders', () => {
    let s = applyEvent(farm(), ev('progress', { jobId: 'j1', framesDone: 20, frames: 300, fps: 30, chunks: [{ id: 'j1-1', status: 'leased', node: 'b', framesDone: 20 }] }))
    s = applyEvent(s, ev('paused', { peers: ['c'] }))
    s = { ...s, nodes: s.nodes.map((n) => n.peerId === 'a' ? { ...n, accepting: false } : n) }
    const rows = new Map(nodeRows(s).map((r) => [r.name, r]))
    expect(rows.get('editor')!.activity).toBe('editor')
    expect(rows.get('alpha')!.activity).toBe('not accepting')
    expect(rows.get('beta')!.activity).toBe('rendering')
    expect(rows.get('beta')!.gpu).toBe('RTX 4090')
    expect(rows.get('beta')!.chunk).toMatchObject({ jobId: 'j1', frameRange: [100, 200], framesDone: 20 })
    expect(rows.get('gamma')!.activity).toBe('paused')
    expect(rows.get('gamma')!.memPct).toBe(25)
    expect(rows.get('alpha')!.benchFps).toEqual({ ffv1: 40, h264: 30 })
    expect(activeChunks(s).size).toBe(1)
  })

  it('a job\'s speed: the workers\' figure, else measured from progress pushes over the last 5 s', () => {
    let s = farm()
    const push = (atMs: number, framesDone: number, fps = 0): void => { s = applyEvent(s, ev('progress', { jobId: 'j1', framesDone, frames: 300, fps, chunks: [], atMs })) }
    push(1000, 0)
    expect(jobSpeed(s, s.jobs[0]!)).toBe(0) // one sample: no speed yet
    push(1500, 10)
    expect(jobSpeed(s, s.jobs[0]!)).toBe(0) // under a second of samples
    push(3000, 60)
    expect(jobSpeed(s, s.jobs[0]!)).toBe(30) // 60 frames in 2 s
    push(9000, 120)
    expect(jobSpeed(s, s.jobs[0]!)).toBe(0) // older samples left the window
    push(10_000, 150)
    expect(jobSpeed(s, s.jobs[0]!)).toBe(30)
    push(11_000, 160, 42)
    expect(jobSpeed(s, s.jobs[0]!)).toBe(42) // the workers' figure wins when there is one
    expect(clusterSummary(s).fps).toBe(42)
    expect(jobSpeed(s, { ...s.jobs[0]!, status: 'done' })).toBe(0)
    expect(jobEtaSeconds(s.jobs[0]!, 0, 20)).toBe(7) // 140 frames left at 20 fps
  })

  it('ETA from live fps, else from the estimate; none once finished; progress fraction', () => {
    const now = Date.parse('2026-01-01T00:00:00Z')
    expect(jobEtaSeconds(job('x', { framesDone: 100, fps: 20 }), now)).toBe(10)
    const est = { seconds: { low: 1, expected: 2, high: 3 }, cost: { low: 0, expected: 0, high: 0, currency: 'USD' }, nodes: 3, completionAt: '2026-01-01T00:01:30Z', chunks: 3, framesPerSecond: 10 }
    expect(jobEtaSeconds(job('x', { estimate: est }), now)).toBe(90)
    expect(jobEtaSeconds(job('x', { status: 'done', fps: 20 }), now)).toBeUndefined()
    expect(jobEtaSeconds(job('x'), now)).toBeUndefined()
    expect(jobFraction(job('x', { framesDone: 150 }))).toBe(0.5)
    expect(jobFraction(job('x', { status: 'done', framesDone: 0 }))).toBe(1)
  })

  it('chunk timeline: one lane per node, bars placed by time, retries and waiting chunks reported', () => {
    const t0 = 1_000_000
    const j = job('t', {
      chunks: [
        { id: 't-0', frameRange: [0, 100], status: 'done', node: 'a', attempts: 1, framesDone: 100, startedAt: t0, endedAt: t0 + 4000 },
        { id: 't-1', frameRange: [100, 200], status: 'done', node: 'b', attempts: 2, framesDone: 100, startedAt: t0 + 2000, endedAt: t0 + 10_000 },
        { id: 't-2', frameRange: [200, 300], status: 'leased', node: 'a', attempts: 1, framesDone: 30, startedAt: t0 + 4000 },
        { id: 't-3', frameRange: [300, 400], status: 'queued', attempts: 0, framesDone: 0 }
      ]
    })
    const t = chunkTimeline(j, new Map([['a', 'alpha'], ['b', 'beta']]), t0 + 8000)
    expect(t.startMs).toBe(t0)
    expect(t.endMs).toBe(t0 + 10_000)
    expect(t.lanes.map((l) => [l.name, l.bars.map((b) => b.chunkId)])).toEqual([['alpha', ['t-0', 't-2']], ['beta', ['t-1']]])
    const [a0, a2] = t.lanes[0]!.bars
    expect([a0!.from, a0!.to, a0!.seconds]).toEqual([0, 0.4, 4])
    expect([a2!.from, a2!.to, a2!.running]).toEqual([0.4, 0.8, true])
    expect(t.lanes[1]!.bars[0]!.attempts).toBe(2)
    expect(t.retried).toBe(1)
    expect(t.notStarted.map((c) => c.id)).toEqual(['t-3'])
    expect(chunkTimeline(job('n'), new Map(), 5).lanes).toEqual([])
  })

  it('formats durations and money; suggests an output beside the timeline', () => {
    expect(formatDuration(7.4)).toBe('0:07')
    expect(formatDuration(185)).toBe('3:05')
    expect(formatDuration(3723)).toBe('1:02:03')
    expect(formatDuration(undefined)).toBe('—')
    expect(formatUsd(0)).toBe('$0')
    expect(formatUsd(0.0000000001)).toBe('<$0.000001')
    expect(formatUsd(0.00002149)).toBe('$0.000021')
    expect(formatUsd(0.0042)).toBe('$0.0042')
    expect(formatUsd(0.00999)).toBe('$0.0100')
    expect(formatUsd(2.5)).toBe('$2.50')
    expect(suggestOutput('/p/edit.otio', '.mp4')).toBe('/p/edit-render.mp4')
    expect(suggestOutput('/p/.json', '.mkv')).toBe('/p/render-render.mkv')
  })

  it('the submit form becomes a request body; a bad cost cap is named', () => {
    const f = { timeline: ' /p/t.json ', output: '/p/o.mkv', outputEdited: false, preset: 'ffv1', priority: 'high', deadline: '30m', maxCost: '' }
    expect(requestBody(f, true)).toEqual({ timeline: '/p/t.json', output: '/p/o.mkv', preset: 'ffv1', priority: 'high', deadline: '30m' })
    expect(requestBody({ ...f, maxCost: '2.5' }, false)).toEqual({ timeline: '/p/t.json', preset: 'ffv1', priority: 'high', deadline: '30m', maxCost: 2.5 })
    expect(requestBody({ ...f, maxCost: 'lots' }, false)).toMatch(/Max cost must be a number/)
  })
})
