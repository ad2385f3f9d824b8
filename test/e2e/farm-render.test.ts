/**
 * The product, end to end: three agent processes on three network-namespace hosts (real mDNS,
 * real libp2p, real ffmpeg) render what a fourth member (an editor's workstation that does
 * not render: --slots 0) submits. Output is frame-identical to a one-machine render; every
 * agent renders; assets cross the network at most once per node; priorities hold; maxCost,
 * bad submissions and cancel behave. Needs root and iproute2: skipped otherwise, except
 * under CI=true where it must run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { existsSync } from 'node:fs'
import { copyFile, readdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { locateFfmpeg, type FfmpegTools } from '../../agent/ffmpeg.ts'
import { bundledFontPath, writeSample } from '../../agent/sample.ts'
import { cleanupTmp, frameHashes, run, tmpDir, writeDissolveCut, writeKitchenSink } from '../helpers/media.ts'
import { canUseNetns, createLan, destroyLan, type Lan } from '../helpers/netns.ts'
import { BIN, cli, killAll, startFarm, statusOf, type AgentProc } from '../helpers/agents.ts'
import { waitFor } from '../helpers/wait.ts'
import { pieceRange } from '../../protocol/messages/jobs.ts'

const canRun = canUseNetns()
if (!canRun && process.env.CI === 'true') throw new Error('farm-render tests need root and iproute2 (ip); CI runs as root: install iproute2')

interface Chunk { id: string; frameRange: [number, number]; node?: string; attempts: number; startedAt?: number }
interface Job { jobId: string; status: string; output?: string; frames: number; chunks: Chunk[]; priority: string; acceptedAt?: number; error?: string }

let lan: Lan | undefined
let dir: string
let tools: FfmpegTools
let workers: AgentProc[] = []
let editor: AgentProc
let editorNs: string
const peerOf = new Map<string, string>()

/** A colour + title timeline of `frames` frames (no media to generate; the font is the one asset). */
async function titleTimeline (name: string, frames: number, width: number, height: number): Promise<string> {
  const d = path.join(dir, name)
  await run('mkdir', ['-p', d])
  await copyFile(bundledFontPath(), path.join(d, 'font.ttf'))
  const t = {
    schema: 'farm.timeline/1', fps: { num: 25, den: 1 }, width, height, duration: frames, assets: { font: { path: 'font.ttf' } },
    video: [
      { clips: [{ id: 'bg', type: 'color', color: '#203040', start: 0, length: frames }] },
      { clips: [{ id: 't', type: 'text', text: `${name} job`, font: 'font', size: 48, color: '#FFFFFF', x: 40, y: 40, start: 0, length: frames }] }
    ]
  }
  const file = path.join(d, 'timeline.json')
  await writeFile(file, JSON.stringify(t))
  return file
}

async function submit (args: string[]): Promise<{ code: number; job?: Job; stderr: string }> {
  const r = await cli(editorNs, ['submit', ...args, '--state-dir', editor.stateDir, '--json'], 300_000)
  return { code: r.code, stderr: r.stderr, ...(r.code === 0 || r.stdout.trim().startsWith('{') ? { job: JSON.parse(r.stdout) as Job } : {}) }
}

async function jobs (): Promise<Job[]> {
  return (await statusOf<{ jobs: Job[] }>(editorNs, editor.stateDir, 'jobs')).jobs
}

describe.skipIf(!canRun)('distributed rendering on a farm of real agents', () => {
  beforeAll(async () => {
    dir = await tmpDir('farm-render')
    tools = await locateFfmpeg()
    lan = createLan(`rf${process.pid % 100000}`, 4, `10.78.${process.pid % 200}`)
    // Pieces down to 0.3 s of a node's time (default 4 s): the short jobs here are cut at lease
    // time too (coordinator/scheduler.ts split), so every output check below covers joined pieces.
    const farm = await startFarm(lan.hosts, dir, ['--min-piece-seconds', '0.3'])
    workers = farm.workers
    editor = farm.editor
    editorNs = farm.hosts[3]!.ns
    for (const [k, v] of farm.peerOf) peerOf.set(k, v)
  }, 180_000)

  afterAll(async () => {
    if (process.env.RS_DEBUG_NETNS === '1') for (const a of [...workers, editor]) console.log(a.log.join('\n'))
    await killAll()
    if (lan !== undefined) destroyLan(lan)
    await cleanupTmp()
  })

  it('renders three timelines submitted at once, cut into pieces as they are leased: frame-identical to a one-machine render, every agent works, assets move once per node', async () => {
    const files = [await writeSample(path.join(dir, 'sample'), tools), await writeKitchenSink(path.join(dir, 'kitchen'), tools.ffmpeg), await writeDissolveCut(path.join(dir, 'dissolve'), tools.ffmpeg)]
    const results = await Promise.all(files.map(async (f, i) => await submit([f, '-o', path.join(dir, `farm-${i}.mkv`), '--preset', 'ffv1'])))
    for (const r of results) {
      expect(r.code, r.stderr).toBe(0)
      expect(r.job!.status).toBe('done')
    }
    for (const [i, f] of files.entries()) {
      const ref = path.join(dir, `local-${i}.mkv`)
      const local = await run(process.execPath, [BIN, 'render', f, '-o', ref, '--preset', 'ffv1', '--chunks', '1'], { timeout: 300_000 })
      expect(local.stderr).not.toMatch(/error/i)
      const [a, b] = [await frameHashes(tools.ffmpeg, results[i]!.job!.output!), await frameHashes(tools.ffmpeg, ref)]
      expect(a.length).toBe(results[i]!.job!.frames)
      expect(a).toEqual(b)
    }
    // Chunks cut at lease time (pieces down to 0.3 s here, a node's first at most 0.6 s until its
    // pace shows): every job's chunks tile its timeline, and a piece's id names its range.
    const pieces = results.flatMap((r) => r.job!.chunks.filter((c) => pieceRange(r.job!.jobId, c.id) !== undefined).map((c) => ({ c, jobId: r.job!.jobId })))
    console.log(`pieces cut at lease time: ${pieces.length} of ${results.reduce((n, r) => n + r.job!.chunks.length, 0)} chunks`)
    expect(pieces.length).toBeGreaterThan(0)
    for (const { c, jobId } of pieces) expect(pieceRange(jobId, c.id)).toEqual({ start: c.frameRange[0], end: c.frameRange[1] })
    for (const r of results) {
      const sorted = [...r.job!.chunks].sort((a, b) => a.frameRange[0] - b.frameRange[0])
      expect(sorted[0]!.frameRange[0]).toBe(0)
      for (let i = 1; i < sorted.length; i++) expect(sorted[i]!.frameRange[0]).toBe(sorted[i - 1]!.frameRange[1])
      expect(sorted.at(-1)!.frameRange[1]).toBe(r.job!.frames)
    }
    const byNode = new Map<string, number>()
    for (const r of results) for (const c of r.job!.chunks) byNode.set(c.node!, (byNode.get(c.node!) ?? 0) + 1)
    console.log(`chunks per node: ${[...byNode].map(([p, n]) => `${[...peerOf].find(([, id]) => id === p)?.[0] ?? p} ${n}`).join(', ')}`)
    for (const w of workers) expect(byNode.get(peerOf.get(w.name)!) ?? 0).toBeGreaterThanOrEqual(1)
    expect(byNode.has(peerOf.get('editor')!)).toBe(false)
    // Each worker fetched each asset over the network at most once (and some did fetch).
    let fetched = 0
    for (const [w, host] of workers.map((w, i) => [w, lan!.hosts[i]!] as const)) {
      const s = await statusOf<{ rendering: { assets: { fetchedBySha: Record<string, number> } } }>(host.ns, w.stateDir)
      for (const n of Object.values(s.rendering.assets.fetchedBySha)) { expect(n).toBe(1); fetched++ }
    }
    expect(fetched).toBeGreaterThan(0)
  }, 600_000)

  it('refuses a job over its maxCost (CostExceeded) and bad submissions, with nothing queued', async () => {
    const t = await titleTimeline('refused', 50, 320, 180)
    const before = (await jobs()).length
    const cost = await submit([t, '-o', path.join(dir, 'x.mkv'), '--max-cost', '0.0000001'])
    expect(cost.code).toBe(2)
    expect(cost.stderr).toMatch(/CostExceeded/)
    expect(cost.stderr).toMatch(/\$/)
    const bad: Array<[string[], RegExp]> = [
      [[t, '-o', path.join(dir, 'x.mkv'), '--priority', 'asap'], /priority.*"asap" is not a priority/],
      [[t, '-o', path.join(dir, 'x.mkv'), '--deadline', '2020-01-01T00:00:00Z'], /deadline.*in the past/],
      [[t, '-o', path.join(dir, 'x.mkv'), '--deadline', 'soon'], /deadline.*neither a duration/],
      [[t, '-o', path.join(dir, 'x.mp4')], /should end in \.mkv/],
      [[t, '-o', path.join(dir, 'x.mkv'), '--preset', 'gif'], /preset/],
      [[path.join(dir, 'missing.json'), '-o', path.join(dir, 'x.mkv')], /cannot read timeline/],
      [[t, '-o', path.join(dir, 'no-such-dir', 'x.mkv')], /output folder .* does not exist/]
    ]
    for (const [args, why] of bad) {
      const r = await submit(args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr).toMatch(why)
    }
    expect((await jobs()).length).toBe(before)
    expect(existsSync(path.join(dir, 'x.mkv'))).toBe(false)
    expect(await readdir(path.join(editor.stateDir, 'jobs')).catch(() => [])).toEqual([])
  }, 120_000)

  it('an urgent job submitted last starts its first chunk before any low job starts another; all five finish correct', async () => {
    const t = await titleTimeline('prio', 150, 640, 360)
    const prios = ['low', 'low', 'normal', 'low', 'urgent']
    // One process submits all five back to back through the SDK (as an editor's tool would).
    const script = path.join(dir, 'submit5.mts')
    await writeFile(script, `import { RenderFarm } from ${JSON.stringify(path.resolve('ui/sdk/farm.ts'))}
      const farm = await RenderFarm.connect(${JSON.stringify(editor.stateDir)})
      const ids = []
      for (const [i, priority] of ${JSON.stringify(prios)}.entries()) ids.push((await farm.submit({ timeline: ${JSON.stringify(t)}, output: ${JSON.stringify(dir)} + '/prio-' + i + '.mkv', preset: 'ffv1', priority })).jobId)
      const done = []
      for (const id of ids) done.push(await farm.wait(id))
      console.log(JSON.stringify(done))`)
    const r = await run('ip', ['netns', 'exec', editorNs, process.execPath, path.resolve('bin/run-ts.js'), script], { timeout: 400_000, maxBuffer: 16 * 1024 * 1024 })
    const done = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Job[]
    expect(done.map((j) => j.status)).toEqual(['done', 'done', 'done', 'done', 'done'])
    const urgent = done[4]!
    const firstUrgent = Math.min(...urgent.chunks.map((c) => c.startedAt!))
    const lowStartsBetween = done.filter((j) => j.priority === 'low').flatMap((j) => j.chunks).filter((c) => c.startedAt! > urgent.acceptedAt! && c.startedAt! < firstUrgent)
    console.log(`urgent accepted at +0 ms, first chunk leased at +${firstUrgent - urgent.acceptedAt!} ms; low chunks started in between: ${lowStartsBetween.length}`)
    expect(lowStartsBetween).toEqual([])
    // It did have to wait for a slot: the farm was busy with the earlier jobs.
    expect(done.slice(0, 4).some((j) => j.chunks.some((c) => c.startedAt! > urgent.acceptedAt!))).toBe(true)
    const ref = await frameHashes(tools.ffmpeg, done[0]!.output!)
    expect(ref.length).toBe(150)
    for (const j of done.slice(1)) expect(await frameHashes(tools.ffmpeg, j.output!)).toEqual(ref)
  }, 600_000)

  it('cancel mid-render: every node stops that job\'s ffmpeg within 2 s and its temporary files are removed', async () => {
    const t = await titleTimeline('cancel', 1500, 1280, 720)
    const r = await cli(editorNs, ['submit', t, '-o', path.join(dir, 'cancel.mkv'), '--detach', '--json', '--state-dir', editor.stateDir])
    expect(r.code, r.stderr).toBe(0)
    const jobId = (JSON.parse(r.stdout) as Job).jobId
    const ffmpegsOf = async (): Promise<number> => {
      let n = 0
      for (const pid of await readdir('/proc')) {
        if (!/^\d+$/.test(pid)) continue
        const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
        if (cmd.includes('ffmpeg') && cmd.includes(dir) && cmd.includes(jobId.slice(0, 36))) n++
      }
      return n
    }
    await waitFor(async () => (await ffmpegsOf()) >= 3 ? true : undefined, 60_000, 'three workers rendering the job', 200)
    // Watch the processes while the cancel command runs; time from the coordinator accepting the cancel.
    const cancelling = cli(editorNs, ['cancel', jobId, '--state-dir', editor.stateDir])
    const goneAt = await waitFor(async () => (await ffmpegsOf()) === 0 ? Date.now() : undefined, 15_000, "every worker's ffmpeg to stop", 50)
    expect((await cancelling).code).toBe(0)
    const job = await waitFor(async () => (await jobs()).find((j) => j.jobId === jobId && j.status === 'cancelled') as (Job & { completedAt: string }) | undefined, 5000, 'the cancelled record')
    console.log(`cancel: all ffmpeg processes of the job gone ${goneAt - Date.parse(job.completedAt)} ms after the coordinator accepted the cancel`)
    expect(goneAt - Date.parse(job.completedAt)).toBeLessThan(2000)
    await waitFor(async () => {
      for (const w of workers) if ((await readdir(path.join(w.stateDir, 'work')).catch(() => [])).length > 0) return undefined
      return (await readdir(path.join(editor.stateDir, 'jobs')).catch(() => [])).length === 0 ? true : undefined
    }, 2000, 'work dirs to be removed', 50)
    expect(existsSync(path.join(dir, 'cancel.mkv'))).toBe(false)
    expect((await jobs()).find((j) => j.jobId === jobId)?.status).toBe('cancelled')
  }, 180_000)
})
