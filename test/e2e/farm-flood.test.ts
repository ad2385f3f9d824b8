/**
 * Hardening on a farm of real agents (issue G): a member flooding the coordinator and a worker
 * with streams is cut off while the farm keeps rendering, and a worker whose disk is full
 * refuses its leases (no attempt counted) while one over its per-job disk quota fails its
 * attempts; each job completes frame-identical to a one-machine render. Real agent processes
 * on namespace hosts, real ffmpeg (ffv1); the flooder is a real member (test/helpers/flooder.ts:
 * joined by invite, so it holds the PSK and a farm-signed certificate). Needs root, iproute2 and
 * nsenter: skipped otherwise, except under CI=true where it must run.
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { FfmpegTools } from '../../agent/ffmpeg.ts'
import { frameHashes } from '../helpers/media.ts'
import { canUseNetns } from '../helpers/netns.ts'
import { allAlive, cli, farmTimeline, jobEnd, jobOf, logTime, renders, restartMember, sizedFarmTimeline, startNetnsFarm, statusOf, stopNetnsFarm, submitDetached, viaOf, type AgentProc, type NetnsFarm, type TestFarm, type Via } from '../helpers/agents.ts'
import { waitFor } from '../helpers/wait.ts'

const canRun = canUseNetns()
if (!canRun && process.env.CI === 'true') throw new Error('farm-flood tests need root and iproute2 (ip); CI runs as root: install iproute2')

const RUN_TS = fileURLToPath(new URL('../../bin/run-ts.js', import.meta.url))
const FLOODER = fileURLToPath(new URL('../helpers/flooder.ts', import.meta.url))
/** How long the flooder keeps at it (it is cut off within seconds; the rest is knocking on a closed door). */
const FLOOD_S = 20

let net: NetnsFarm | undefined
let dir: string
let tools: FfmpegTools
let farm: TestFarm
let timeline: string
let reference: string[]
// Chunks of about 2 s of work: a job has many, so rendering goes on through the flood.
const EXTRA = ['--chunk-seconds', '2']
const editor = (): Via => viaOf(farm, farm.editor)
const worker = (name: string): AgentProc => farm.workers.find((w) => w.name === name)!

interface Tally { opened: number; answered: number; refused: number; closedAtMs?: number; attemptsAfter: number; answeredAfter: number; errors: string[] }

describe.skipIf(!canRun)('hardening on a farm of real agents', () => {
  beforeAll(async () => {
    net = await startNetnsFarm('farm-flood', 'fl', 75, EXTRA)
    ;({ dir, tools, farm } = net)
    // Long enough to be mid-render through the whole flood on three workers: about 16 chunks.
    ;({ timeline, reference } = await sizedFarmTimeline(net, 16, 1500, 9000, 'flooded'))
  }, 600_000)

  afterAll(async () => { await stopNetnsFarm(net, 'flood') })

  it('a member flooding the coordinator and a worker with streams is cut off and refused, while the farm keeps rendering; output identical', async () => {
    const leader = (await statusOf<{ rendering: { coordinator: { leader: string | null } } }>(farm.hosts[3]!.ns, farm.editor.stateDir)).rendering.coordinator.leader
    const coordinator = farm.workers.find((w) => farm.peerOf.get(w.name) === leader)!
    expect(coordinator, 'a worker coordinates').toBeDefined()
    const target = farm.workers.find((w) => w !== coordinator)!
    const targets = [coordinator, target]
    // A real member: joins with an invite from the farm key's machine, from the editor's host.
    const inv = await cli(farm.hosts[0]!.ns, ['farm', 'invite', '--ttl', '10m', '--state-dir', worker('alpha').stateDir])
    expect(inv.code, inv.stderr).toBe(0)
    const go = path.join(dir, 'flood-go')
    const args = { token: inv.stdout.trim(), listen: `/ip4/${farm.hosts[3]!.ip}/tcp/0`, targets: targets.map((a) => farm.peerOf.get(a.name)!), seconds: FLOOD_S, go }
    const out: string[] = []
    const flooder = spawn('ip', ['netns', 'exec', farm.hosts[3]!.ns, process.execPath, RUN_TS, FLOODER, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] })
    flooder.stdout.on('data', (d: Buffer) => { for (const l of d.toString().split('\n')) if (l !== '') out.push(`${Date.now()} ${l}`) })
    flooder.stderr.on('data', (d: Buffer) => { for (const l of d.toString().split('\n')) if (l !== '') out.push(`${Date.now()} stderr ${l}`) })
    const line = (re: RegExp): string | undefined => out.find((l) => re.test(l.slice(l.indexOf(' ') + 1)))
    let jobId: string | undefined
    let finished = false
    try {
      const joined = await waitFor(() => line(/^(members \d+|error )/), 120_000, 'the flooder to join and meet its targets', 200)
      expect(joined, out.join('\n')).toMatch(/ members \d+$/)
      const flooderId = /^\d+ joined (\S+)$/.exec(line(/^joined /)!)![1]!
      const out1 = path.join(dir, 'flooded.mkv')
      jobId = await submitDetached(editor(), timeline, out1)
      // Mid-render: a chunk finished and most of the job still to go.
      await waitFor(async () => {
        const j = await jobOf(editor(), jobId!)
        return j !== undefined && j.chunks.some((c) => c.status === 'done') && j.chunks.filter((c) => c.status !== 'done').length >= 4 ? true : undefined
      }, 120_000, 'the job to be mid-render', 200)
      await writeFile(go, 'go')
      const floodAt = logTime(await waitFor(() => line(/^flooding$/), 30_000, 'the flood to start', 50))
      const result = await waitFor(() => line(/^(result |error )/), (FLOOD_S + 120) * 1000, 'the flooder to finish', 200)
      const floodEnd = logTime(result)
      expect(result, out.join('\n')).toMatch(/ result /)
      const tallies = JSON.parse(result.slice(result.indexOf('result ') + 7)) as Record<string, Tally>
      console.log(`flood of ${FLOOD_S} s on ${targets.map((t) => t.name).join(' and ')}: ${JSON.stringify(tallies)}`)
      for (const t of targets) {
        const tally = tallies[farm.peerOf.get(t.name)!]!
        // Each target closed its connection to the flooder, and refused it on every try since.
        expect(tally.closedAtMs, `${t.name} cut the flooder off (its tally: ${JSON.stringify(tally)}; its refusals: ${t.log.filter((l) => l.includes(`refused ${flooderId}`)).length})`).toBeDefined()
        expect(tally.attemptsAfter).toBeGreaterThan(0)
        expect(tally.answeredAfter).toBe(0)
        // Each target reports it: the cut-off, naming the member and the limit it kept breaking.
        const report = t.log.find((l) => l.includes(`refused ${flooderId}: peer-cut-off (flooder kept breaking its `))
        expect(report, `${t.name} reports the flooder`).toMatch(/kept breaking its (streams|rate) limit; refused for 60 s\)/)
        console.log(`${t.name}: ${report!.slice(report!.indexOf(' ') + 1)}; ${t.log.filter((l) => l.includes(`refused ${flooderId}: peer-limit:`)).length} stream(s) refused before it; connection closed ${tally.closedAtMs} ms into the flood`)
      }
      // The farm kept rendering: chunks finished while the flood ran.
      const during = [...renders(farm.workers).values()].flat().filter((at) => at >= floodAt && at <= floodEnd)
      console.log(`chunks finished during the ${((floodEnd - floodAt) / 1000).toFixed(1)} s flood: ${during.length}`)
      expect(during.length).toBeGreaterThan(0)
      const done = await jobEnd(editor(), jobId!, 300_000)
      finished = true
      expect(done.status, done.error).toBe('done')
      expect(await frameHashes(tools.ffmpeg, out1)).toEqual(reference)
    } finally {
      if (flooder.exitCode === null && flooder.pid !== undefined) flooder.kill('SIGKILL')
      // A failed check leaves no job running into the next test (it would take that test's workers).
      if (jobId !== undefined && !finished) await cli(farm.hosts[3]!.ns, ['cancel', jobId, '--state-dir', farm.editor.stateDir]).catch(() => {})
    }
  }, 600_000)

  it('a worker on a full disk refuses its leases and one over its per-job disk quota fails its attempts: the job completes on the rest, identical', async () => {
    // The flooder's membership is gone by now (dead to every member: it was killed).
    await allAlive(farm)
    // gamma: a per-job disk quota far under one segment (RENDERSWARM_RENDER_JOB_DISK_MB=0.01, about 10 KiB; a chunk's segment here is about 3 KiB a frame).
    const gammaOld = worker('gamma')
    gammaOld.child.kill('SIGKILL')
    await waitFor(() => gammaOld.child.exitCode !== null || gammaOld.child.signalCode !== null ? true : undefined, 10_000, 'gamma to exit')
    const gamma = restartMember(net!, 'gamma', EXTRA, { RENDERSWARM_RENDER_JOB_DISK_MB: '0.01' })
    await allAlive(farm)
    // beta: an 8 KiB disk for its chunk work dirs, mounted in beta's own mount namespace (never the host's).
    const beta = worker('beta')
    const workDir = path.join(beta.stateDir, 'work')
    execFileSync('mkdir', ['-p', workDir])
    execFileSync('nsenter', ['-t', String(beta.child.pid), '-m', 'mount', '-t', 'tmpfs', '-o', 'size=8k', 'tmpfs', workDir])
    try {
      // The status shows beta as not accepting, with the reason.
      const betaSelf = await waitFor(async () => {
        const r = await statusOf<{ nodes: Array<{ name: string; self: boolean; accepting: boolean; notAcceptingBecause?: string }> }>(viaOf(farm, beta).ns, beta.stateDir, 'nodes')
        const me = r.nodes.find((n) => n.self)
        return me?.accepting === false ? me : undefined
      }, 20_000, 'beta to report itself not accepting', 500)
      expect(betaSelf.notAcceptingBecause).toMatch(/^the disk holding .*work has 0 MiB free, under the 1024 MiB this node keeps free; not taking chunks until there is room$/)
      // A shorter job: alpha renders most of it alone.
      const small = path.join(dir, 'disk')
      await mkdir(small, { recursive: true })
      const { timeline: smallTimeline, reference: smallReference } = await farmTimeline(small, tools, 400, 'disk')
      const out = path.join(dir, 'disk.mkv')
      const submittedAt = Date.now()
      const jobId = await submitDetached(editor(), smallTimeline, out)
      const done = await jobEnd(editor(), jobId, 400_000)
      expect(done.status, done.error).toBe('done')
      expect(await frameHashes(tools.ffmpeg, out)).toEqual(smallReference)
      const errors = done.chunks.flatMap((c) => c.errors ?? [])
      const refusals = [...farm.workers, farm.editor].flatMap((a) => a.log).filter((l) => logTime(l) >= submittedAt && /lease of \S+ to \S+ not taken: the disk holding/.test(l))
      console.log(`disk: job done identical; beta (full disk) took ${done.chunks.filter((c) => c.node === farm.peerOf.get('beta')).length} chunk(s), its leases refused on the wire ${refusals.length} time(s); gamma's failed attempts: ${errors.filter((e) => e.startsWith('gamma')).join(' | ')}`)
      // beta took no chunk and failed no attempt: refused leases are not attempts.
      expect(done.chunks.filter((c) => c.node === farm.peerOf.get('beta'))).toEqual([])
      expect(errors.filter((e) => e.startsWith('beta'))).toEqual([])
      expect([...renders([beta]).keys()].filter((id) => id.startsWith(jobId))).toEqual([])
      // gamma's segments each took the job over its quota: failed attempts naming it, none kept.
      expect(errors.some((e) => /^gamma: job \S+ holds [\d.]+ (KiB|MiB) on this worker's disk, at or over its per-job quota of \d+ KiB; the segment was not kept$/.test(e))).toBe(true)
      expect(done.chunks.filter((c) => c.node === farm.peerOf.get('gamma'))).toEqual([])
      // Both agents kept running.
      expect(beta.child.exitCode).toBeNull()
      expect(gamma.child.exitCode).toBeNull()
    } finally {
      execFileSync('nsenter', ['-t', String(beta.child.pid), '-m', 'umount', workDir])
    }
  }, 600_000)
})
