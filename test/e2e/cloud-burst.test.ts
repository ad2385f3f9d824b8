/**
 * Cloud burst in the running farm (issue E's Done-when): a real agent that holds the farm key runs
 * the burst controller (agent/cloud-burst.ts) with the local provider, which "rents" real agent
 * processes on 127.0.0.1 that join with single-use invites and --location cloud. No namespaces,
 * no mDNS; every process started here is ended by its PID and every temp dir removed.
 *
 * The studio agent runs in this process (so the test can send the local provider's spot notice);
 * it first starts without cloud.json to measure its benchmark (cached in its store), then restarts
 * with each test's cloud.json: the expected fps of a `local-agent` is that measured figure (the
 * rented agents are this same machine).
 *
 * Capacity. This machine has two cores, and agents on it share them: a "rented" agent would add
 * no compute. So the studio (this process, and the ffmpeg it starts) is pinned to one core with
 * taskset, and each rented agent is given the other cores as soon as it is launched (its own
 * machine: with every core, a rented agent's renders, and any backup copy of a studio chunk,
 * took time from the studio's own core, and one CI run's burst gained 1 % instead of 20 %). Where
 * taskset is missing the pinning is skipped and the deadline test says why it may be slow.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFileSync } from 'node:child_process'
import os from 'node:os'
import { readdirSync, readFileSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { Agent } from '../../agent/daemon.ts'
import { locateFfmpeg, type FfmpegTools } from '../../agent/ffmpeg.ts'
import { writeSample } from '../../agent/sample.ts'
import { LocalProvider } from '../../coordinator/cloud/local.ts'
import { ApiError, LocalClient } from '../../ui/sdk/client.ts'
import { BIN } from '../helpers/agents.ts'
import { cleanupTmp, frameHashes, run, tmpDir } from '../helpers/media.ts'
import { waitFor } from '../helpers/wait.ts'

const PRICE = 3.6 // USD per hour of a "rented" local agent: a tenth of a cent per second
interface Chunk { id: string; status: string; node?: string; frameRange: [number, number]; startedAt?: number; endedAt?: number; attempts: number }
interface Job { jobId: string; status: string; output?: string; frames: number; chunks: Chunk[]; actualCost: number; deadline?: string; completedAt?: string; estimate?: { seconds: { expected: number } } }
interface Inst { id: string; name: string; state: string; peerId?: string; pid?: number; usd: number; spot: boolean }
interface Cloud { spentUsd: number; hourlyRateUsd: number; instances: Inst[]; notes: string[]; jobs: Record<string, { usd: number; frames: number }> }
interface Member { peerId: string; name: string; state: string; location: string }

let dir: string
let stateDir: string
let tools: FfmpegTools
let timeline: string
let refHashes: string[]
let agent: Agent | undefined
let api: LocalClient
let fps: number
/** Measured: the studio alone renders the sample in this many seconds (submit to done). */
let soloSeconds: number | undefined
const pids = new Set<number>()

const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true } catch { return false } }

/** The ffmpeg processes below `root` in the process tree whose command line names `mark` (read from /proc). */
function ffmpegsUnder (root: number, mark: string): number[] {
  const parent = new Map<number, number>()
  const name = new Map<number, string>()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8')
      const close = stat.lastIndexOf(')')
      name.set(Number(d), stat.slice(stat.indexOf('(') + 1, close))
      parent.set(Number(d), Number(stat.slice(close + 2).split(' ')[1]))
    } catch { /* gone */ }
  }
  const under = (pid: number): boolean => { for (let p = parent.get(pid), n = 0; p !== undefined && p > 1 && n < 64; p = parent.get(p), n++) if (p === root) return true; return false }
  const names = (pid: number): boolean => { try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(mark) } catch { return false } }
  return [...name].filter(([pid, n]) => n === 'ffmpeg' && under(pid) && names(pid)).map(([pid]) => pid)
}
const ALL_CORES = ((1 << Math.min(30, os.availableParallelism())) - 1).toString(16)
/** Every core but the studio's (core 0). */
const OTHER_CORES = (((1 << Math.min(30, os.availableParallelism())) - 1) & ~1).toString(16)
/** Sets a process's (every thread's) CPU affinity; false where taskset is missing. */
function pin (pid: number, mask: string): boolean {
  try { execFileSync('taskset', ['-a', '-p', mask, String(pid)], { stdio: 'ignore' }); return true } catch { return false }
}
let pinned = false
/** Rented agents get the cores the studio does not use (their own machine); the studio keeps its one. */
const widen = (c: Cloud): void => { if (pinned) for (const i of c.instances) if (i.pid !== undefined && i.state !== 'terminated' && !pids.has(i.pid)) pin(i.pid, OTHER_CORES) }

async function startStudio (cloud: Record<string, unknown> | undefined): Promise<void> {
  if (agent !== undefined) { await agent.stop(); agent = undefined }
  if (cloud !== undefined) await writeFile(path.join(stateDir, 'cloud.json'), JSON.stringify(cloud))
  agent = await Agent.start({
    stateDir, name: 'studio', listen: ['/ip4/127.0.0.1/tcp/0'], apiPort: 0, mdns: false, slots: 1, chunkSeconds: 1,
    burst: { tickMs: 1000, local: { baseDir: dir, priceUsdPerHour: PRICE, graceMs: 2500, stopTimeoutMs: 5000 } }
  })
  api = await LocalClient.forStateDir(stateDir)
  await agent.benchDone
  await waitFor(async () => (await api.get<{ rendering?: { coordinator: { self: boolean } } }>('/v1/status')).rendering?.coordinator.self === true ? true : undefined, 30_000, 'the studio to coordinate', 200)
}

const cloudOf = async (): Promise<Cloud> => (await api.get<{ cloud: Cloud }>('/v1/status')).cloud
const jobOf = async (id: string): Promise<Job> => (await api.get<{ job: Job }>(`/v1/jobs/${id}`)).job
const nodes = async (): Promise<Member[]> => (await api.get<{ nodes: Member[] }>('/v1/nodes')).nodes
const track = (c: Cloud): void => { widen(c); for (const i of c.instances) if (i.pid !== undefined) pids.add(i.pid) }

async function submit (name: string, extra: Record<string, unknown> = {}): Promise<Job> {
  return (await api.post<{ job: Job }>('/v1/jobs', { timeline, output: path.join(dir, `${name}.mkv`), preset: 'ffv1', name, ...extra })).job
}
async function end (id: string, timeoutMs: number): Promise<Job> {
  return await waitFor(async () => { const j = await jobOf(id); return ['done', 'failed', 'cancelled'].includes(j.status) ? j : undefined }, timeoutMs, `job ${id} to end`, 250)
}
/** What the studio alone predicts for the sample (before any cloud node), seconds. */
async function localSeconds (): Promise<number> {
  const { estimate } = await api.post<{ estimate: { seconds: { expected: number } } }>('/v1/estimate', { timeline, preset: 'ffv1' })
  return estimate.seconds.expected
}

function config (over: Record<string, unknown>): Record<string, unknown> {
  return {
    providers: { local: { maxInstances: 3 } }, minNodes: 0, maxNodes: 2, cooldownSeconds: 0, idleSeconds: 8, bootSeconds: 6,
    budget: { amount: 5, period: 'day' }, expectedFps: { 'local-agent': { ffv1: fps, h264: fps } }, ...over
  }
}

/** The sample timeline played three times in a row (clip ids made unique per copy), beside the original. */
async function tripled (file: string): Promise<string> {
  type Clip = { id: string; start: number }
  type Track = { clips: Clip[]; transitions?: Array<{ a: string; b: string }> }
  const t = JSON.parse(await readFile(file, 'utf8')) as { duration: number; video: Track[]; audio: Track[] }
  const copy = (tracks: Track[]): Track[] => tracks.map((tr) => ({
    ...tr,
    clips: [0, 1, 2].flatMap((k) => tr.clips.map((c) => ({ ...c, id: `${c.id}${k}`, start: c.start + k * t.duration }))),
    ...(tr.transitions !== undefined ? { transitions: [0, 1, 2].flatMap((k) => tr.transitions!.map((x) => ({ ...x, a: `${x.a}${k}`, b: `${x.b}${k}` }))) } : {})
  }))
  const out = path.join(path.dirname(file), 'sample3.timeline.json')
  await writeFile(out, JSON.stringify({ ...t, duration: t.duration * 3, video: copy(t.video), audio: copy(t.audio) }))
  return out
}

describe('cloud burst with the local provider', () => {
  beforeAll(async () => {
    dir = await tmpDir('cloud-burst')
    stateDir = path.join(dir, 'studio')
    tools = await locateFfmpeg()
    // The sample three times over (60 s of video): long enough that machines which take seconds
    // to boot, join and fetch media still pay for themselves before a deadline.
    timeline = await tripled(await writeSample(path.join(dir, 'sample'), tools))
    // The one-machine reference, on every core before the studio is pinned to one: ffv1 chunks
    // join frame-identical to one chunk (test/e2e/render-equivalence.test.ts).
    const ref = path.join(dir, 'one-machine.mkv')
    await run(process.execPath, [BIN, 'render', timeline, '-o', ref, '--preset', 'ffv1', '--chunks', '4', '--parallel', String(Math.min(4, os.availableParallelism()))], { timeout: 300_000 })
    refHashes = await frameHashes(tools.ffmpeg, ref)
    pinned = os.availableParallelism() > 1 && pin(process.pid, '1')
    await startStudio(undefined)
    fps = (agent!.nodes()[0]!.info as { bench: Record<string, number> }).bench.ffv1!
    expect(fps).toBeGreaterThan(0)
  }, 240_000)

  afterAll(async () => {
    await agent?.stop() // gives back every rented machine (SIGTERM, then SIGKILL by PID)
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL')
    if (pinned) pin(process.pid, ALL_CORES)
    await cleanupTmp()
  }, 60_000)

  it('never passes the budget: demand far above it is held back, and the notes say so', async () => {
    // A deadline the studio misses by far, and a budget of two tenths of a cent: one machine for 2 s.
    await startStudio(config({ budget: { amount: 0.002, period: 'day' }, maxNodes: 3 }))
    const t = await localSeconds()
    const job = await submit('budget', { deadline: `${Math.max(5, Math.round(t / 4))}s` })
    const notes = await waitFor(async () => { const c = await cloudOf(); return c.notes.some((n) => /budget/.test(n)) ? c.notes : undefined }, 20_000, 'a budget note', 250)
    console.log(`budget notes: ${notes.join(' | ')}`)
    // A manual request is refused with the reason, and nothing is launched.
    const e = await api.post('/v1/cloud/scale', { provider: 'local', count: 2, spot: false }).catch((err: unknown) => err)
    expect(e).toBeInstanceOf(ApiError)
    expect((e as ApiError).status).toBe(409)
    expect((e as ApiError).message).toMatch(/budget.*over the \$0\.002 day budget/)
    const bad = await api.post('/v1/cloud/scale', { provider: 'local', count: 0 }).catch((err: unknown) => err)
    expect([(bad as ApiError).status, (bad as ApiError).message]).toEqual([400, expect.stringMatching(/count.*1–100/)])
    await new Promise((r) => setTimeout(r, 4000)) // a few more ticks with the demand still there
    const c = await cloudOf()
    track(c)
    expect(c.spentUsd).toBeLessThanOrEqual(0.002)
    for (const i of c.instances) expect(i.usd).toBeLessThanOrEqual(0.002)
    await api.post(`/v1/jobs/${job.jobId}/cancel`, {})
    await end(job.jobId, 30_000)
  }, 90_000)

  it('a job the studio meets on its own launches nothing', async () => {
    await startStudio(config({ deadlineMargin: 0.5 }))
    const t = await localSeconds()
    const t0 = Date.now()
    const job = await submit('local-only', { deadline: `${Math.round(t * 6 + 30)}s` })
    const done = await end(job.jobId, 180_000)
    expect(done.status).toBe('done')
    soloSeconds = (Date.now() - t0) / 1000
    console.log(`studio alone${pinned ? " (one core)" : ""}: ${t.toFixed(1)} s predicted, ${soloSeconds.toFixed(1)} s measured`)
    const c = await cloudOf()
    expect(c.instances).toEqual([])
    expect(c.spentUsd).toBe(0)
    expect((await nodes()).filter((n) => n.location === 'cloud')).toEqual([])
    expect(await frameHashes(tools.ffmpeg, done.output!)).toEqual(refHashes)
  }, 200_000)

  it('bursts for a deadline the studio misses: cloud agents join, render, the deadline is met, they are given back after the idle threshold, the cost is reported', async () => {
    const t = await localSeconds()
    // 90 % of what the studio alone measurably took (previous test): it cannot meet this on its own.
    expect(soloSeconds).toBeDefined()
    const deadlineS = Math.round(soloSeconds! * 0.9)
    const t0 = Date.now()
    const job = await submit('burst', { deadline: `${deadlineS}s` })
    const launched = await waitFor(async () => { const c = await cloudOf(); return c.instances.length > 0 ? c : undefined }, 15_000, 'a launch', 100)
    track(launched)
    console.log(`studio alone: ${t.toFixed(1)} s predicted; deadline ${deadlineS} s; launched ${launched.instances.length}: ${launched.notes.join(' | ')}`)
    await waitFor(async () => {
      track(await cloudOf())
      const m = (await nodes()).filter((n) => n.location === 'cloud' && n.state === 'alive')
      return m.length >= launched.instances.length ? m : undefined
    }, 30_000, 'the cloud agents to join', 250)
    const done = await waitFor(async () => { track(await cloudOf()); const j = await jobOf(job.jobId); return ['done', 'failed', 'cancelled'].includes(j.status) ? j : undefined }, 240_000, 'the burst job to end', 250)
    const tookS = (Date.now() - t0) / 1000
    expect(done.status).toBe('done')
    const cloudPeers = new Set((await cloudOf()).instances.flatMap((i) => i.peerId !== undefined ? [i.peerId] : []))
    expect(cloudPeers.size).toBeGreaterThan(0)
    expect((await nodes()).filter((n) => cloudPeers.has(n.peerId)).every((n) => n.location === 'cloud')).toBe(true)
    const onCloud = done.chunks.filter((ch) => cloudPeers.has(ch.node ?? ''))
    expect(onCloud.length).toBeGreaterThan(0)
    expect(await frameHashes(tools.ffmpeg, done.output!)).toEqual(refHashes)
    // Per job: the coordinator charges cloud chunks at the rented rate (the agents run with --cost-per-hour).
    const cloudChunkUsd = onCloud.reduce((s, ch) => s + (ch.endedAt! - ch.startedAt!) / 3_600_000 * PRICE, 0)
    expect(done.actualCost).toBeGreaterThanOrEqual(cloudChunkUsd * 0.999)
    // Idle threshold (8 s) then terminated: PIDs gone, metering stopped, spend reported.
    const after = await waitFor(async () => { const c = await cloudOf(); return c.instances.every((i) => i.state === 'terminated') ? c : undefined }, 40_000, 'the cloud agents to be given back', 500)
    track(after)
    for (const i of after.instances) expect(alive(i.pid!)).toBe(false)
    expect(after.spentUsd).toBeGreaterThan(0)
    expect(after.hourlyRateUsd).toBe(0)
    expect(after.jobs[job.jobId]!.usd).toBeGreaterThan(0)
    console.log(`burst: ${after.instances.length} cloud agent(s), ${onCloud.length}/${done.chunks.length} chunks on them; job took ${tookS.toFixed(1)} s for a ${deadlineS} s deadline (studio alone: ${soloSeconds!.toFixed(1)} s); job actualCost $${done.actualCost} (cloud chunks $${cloudChunkUsd.toFixed(6)}), cloud metered $${after.spentUsd} (${after.instances.map((i) => `${i.name} $${i.usd}`).join(', ')}); load average ${os.loadavg()[0]!.toFixed(1)}`)
    // Last, so that every other property above is checked and the figures printed even when a
    // loaded machine makes the rented agents too slow to help.
    expect(Date.parse(done.completedAt!)).toBeLessThanOrEqual(Date.parse(done.deadline!))
  }, 330_000)

  it('an interruption notice mid-chunk drains the node; its chunk finishes elsewhere; the output is frame-identical', async () => {
    await waitFor(async () => (await cloudOf()).instances.every((i) => i.state === 'terminated') ? true : undefined, 40_000, 'no rented machine left from before', 500)
    const job = await submit('interrupted')
    const { launched } = await api.post<{ launched: Array<{ id: string; name: string }> }>('/v1/cloud/scale', { provider: 'local', count: 1, spot: true })
    expect(launched).toHaveLength(1)
    track(await cloudOf())
    const peer = await waitFor(async () => (await nodes()).find((n) => n.name === launched[0]!.name && n.state === 'alive'), 30_000, 'the spot agent to join', 250)
    const chunk = await waitFor(async () => (await jobOf(job.jobId)).chunks.find((c) => c.node === peer.peerId && c.status === 'leased'), 60_000, 'a chunk on the spot agent', 100)
    // Mid-chunk through the notice: a chunk here renders in about as long as the notice lasts, so
    // the ffmpeg rendering this chunk on the spot agent (its work dir is named after the chunk; the
    // agent's own benchmark runs ffmpeg too) is held (SIGSTOP) until the machine is taken, as a
    // chunk longer than the notice would be. Only processes under the agent this test started.
    const spotPid = (await cloudOf()).instances.find((i) => i.id === launched[0]!.id)!.pid!
    const held = await waitFor(() => { const p = ffmpegsUnder(spotPid, chunk.id); return p.length > 0 ? p : undefined }, 20_000, 'the spot agent\'s ffmpeg', 20)
    for (const p of held) process.kill(p, 'SIGSTOP')
    for (const p of held) pids.add(p) // SIGKILLed after the tests if still there (a stopped process outlives its agent's SIGTERM)
    const local = (agent!.burst!.provider('local') as LocalProvider)
    local.interrupt(launched[0]!.id)
    // Drained: the coordinator was asked to pause it (no new chunks), seen here as its paused list.
    const drained = await waitFor(() => agent!.farm!.pausedNodes().includes(peer.peerId) ? true : undefined, 10_000, 'the node to be drained', 100)
    expect(drained).toBe(true)
    const done = await end(job.jobId, 240_000)
    expect(done.status).toBe('done')
    const again = done.chunks.find((c) => c.id === chunk.id)!
    expect(again.status).toBe('done')
    expect(again.node).not.toBe(peer.peerId)
    expect(await frameHashes(tools.ffmpeg, done.output!)).toEqual(refHashes)
    const c = await waitFor(async () => { const x = await cloudOf(); return x.instances.find((i) => i.id === launched[0]!.id)?.state === 'terminated' ? x : undefined }, 20_000, 'the interrupted instance to be metered to its end', 250)
    const inst = c.instances.find((i) => i.id === launched[0]!.id)!
    expect(inst.spot).toBe(true)
    expect(alive(inst.pid!)).toBe(false)
    console.log(`interruption: chunk ${chunk.id} [${chunk.frameRange.join(', ')}) moved from ${peer.name} to ${again.node} (attempts ${again.attempts}); ${peer.name} billed $${inst.usd}`)
  }, 300_000)
})
