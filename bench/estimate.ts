/**
 * Estimate accuracy (issue E): for each test timeline on a 1-agent and a 3-agent farm, the
 * estimate (`renderswarm estimate --json`) against what the job then measured: time from just
 * before the submit (POST /v1/jobs) to its 'done', and the job's `actualCost`.
 *
 *   node bin/run-ts.js bench/estimate.ts [--reps 3] [--only sample,kitchen] [--farms 1,3] [--keep DIR]
 *   npm run bench:estimate
 *
 * Timelines: the sample (agent/sample.ts, 600 frames 720p), the kitchen-sink and dissolve-cut
 * timelines of test/e2e/farm-render (test/helpers/media.ts), and the 720p colour+text timeline
 * of the failure tests (test/helpers/agents.ts farmTimeline, 300 frames; written here the same
 * way without its reference render). Farms: real agents on 127.0.0.1 (`renderswarm agent
 * --no-mdns`, joined with invites as in `renderswarm demo`), each at --cost-per-hour 1 so that
 * cost is not zero; both farms stay up and the runs are interleaved (rep → farm → timeline).
 * Every pair is printed with its error (predicted / measured − 1); then the median and worst
 * absolute error, per farm and overall, from the medians over the reps, and the spread of the
 * measured times over the reps (the noise floor on a shared machine). Exits 0 whether the
 * ±10 % target is met or not; non-zero on errors. Every wait is bounded; it stops the agents it
 * started and removes its temp dir (unless --keep).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { locateFfmpeg } from '../agent/ffmpeg.ts'
import { writeSample } from '../agent/sample.ts'
import { RenderFarm, type Estimate } from '../ui/sdk/farm.ts'
import { writeColourText } from '../test/helpers/agents.ts'
import { writeDissolveCut, writeKitchenSink } from '../test/helpers/media.ts'

const { values: opt } = parseArgs({
  options: { reps: { type: 'string', default: '3' }, only: { type: 'string' }, farms: { type: 'string', default: '1,3' }, keep: { type: 'string' } },
  strict: true
})
const REPO = fileURLToPath(new URL('..', import.meta.url))
const BIN = path.join(REPO, 'bin', 'renderswarm.js')
const COST_PER_HOUR = 1
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length === 0 ? NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2 }
const pct = (x: number): string => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`

function cli (args: string[], timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''; let stderr = ''
    const t = setTimeout(() => { c.kill('SIGKILL') }, timeoutMs)
    c.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    c.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    c.on('close', (code) => { clearTimeout(t); resolve({ code: code ?? 1, stdout, stderr }) })
  })
}

async function until<T> (what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await fn().catch(() => undefined)
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`${what} took over ${timeoutMs / 1000} s`)
    await sleep(250)
  }
}

interface Farm { name: string; size: number; first: string; farm: RenderFarm }
const children: ChildProcess[] = []
/** The temp dir to remove on the way out (unset with --keep). */
let tempRoot: string | undefined

async function startFarm (root: string, size: number): Promise<Farm> {
  const dir = path.join(root, `farm${size}`)
  await mkdir(dir, { recursive: true })
  const names = Array.from({ length: size }, (_, i) => `f${size}-${i + 1}`)
  const start = (name: string): void => {
    const log = createWriteStream(path.join(dir, `${name}.log`), { flags: 'a' })
    const c = spawn(process.execPath, [BIN, 'agent', '--state-dir', path.join(dir, name), '--name', name, '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--api-port', '0', '--cost-per-hour', String(COST_PER_HOUR)], { stdio: ['ignore', 'ignore', 'pipe'] })
    c.stderr!.pipe(log)
    children.push(c)
  }
  const first = path.join(dir, names[0]!)
  start(names[0]!)
  await until(`${names[0]} to start`, 90_000, async () => existsSync(path.join(first, 'api.json')) ? true : undefined)
  const farm = await until(`the API of ${names[0]}`, 10_000, async () => await RenderFarm.connect(first))
  // One agent at a time, each after the one before has its benchmark: agents that benchmark at
  // once on one machine share its cores and get figures a factor of 4 apart.
  const benchmarked = async (n: number): Promise<true | undefined> => {
    const { nodes } = await farm.client.get<{ nodes: Array<{ state: string; info?: { bench?: Record<string, number> } }> }>('/v1/nodes')
    return nodes.filter((x) => x.state === 'alive' && (x.info?.bench?.ffv1 ?? 0) > 0).length >= n ? true : undefined
  }
  await until(`${names[0]}'s benchmark`, 120_000, async () => await benchmarked(1))
  for (const [i, name] of names.slice(1).entries()) {
    const inv = await cli(['farm', 'invite', '--ttl', '10m', '--state-dir', first])
    if (inv.code !== 0) throw new Error(`farm invite: ${inv.stderr.trim()}`)
    const join = await cli(['farm', 'join', inv.stdout.trim(), '--state-dir', path.join(dir, name)])
    if (join.code !== 0) throw new Error(`farm join: ${join.stderr.trim()}`)
    start(name)
    await until(`${name}'s benchmark`, 120_000, async () => await benchmarked(i + 2))
  }
  // Every member alive with its ffv1 benchmark, and a coordinator elected.
  await until(`${size} member(s) with benchmarks and a coordinator`, 180_000, async () => {
    const [{ nodes }, s] = await Promise.all([
      farm.client.get<{ nodes: Array<{ state: string; info?: { bench?: Record<string, number> } }> }>('/v1/nodes'),
      farm.client.get<{ rendering?: { coordinator?: { leader: string | null } } }>('/v1/status')
    ])
    const alive = nodes.filter((n) => n.state === 'alive' && (n.info?.bench?.ffv1 ?? 0) > 0)
    return alive.length === size && s.rendering?.coordinator?.leader != null ? true : undefined
  })
  return { name: `${size} agent${size === 1 ? '' : 's'}`, size, first, farm }
}

async function stopAll (): Promise<void> {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM')
  await Promise.all(children.map((c) => new Promise<void>((resolve) => {
    if (c.exitCode !== null) { resolve(); return }
    const t = setTimeout(() => { c.kill('SIGKILL'); resolve() }, 8000)
    c.once('exit', () => { clearTimeout(t); resolve() })
  })))
}

/** The failure tests' 720p colour+text timeline, in its own dir. */
async function writeColourTextIn (dir: string, frames: number): Promise<string> {
  await mkdir(dir, { recursive: true })
  return await writeColourText(dir, frames, 'nothing lost')
}

interface Pair { farm: string; timeline: string; rep: number; predS: number; measS: number; predUsd: number; measUsd: number; chunks: number }

async function main (): Promise<void> {
  const reps = Number(opt.reps)
  if (!Number.isInteger(reps) || reps < 1 || reps > 20) throw new Error(`--reps must be 1–20 (got ${opt.reps})`)
  const sizes = opt.farms!.split(',').map(Number)
  if (sizes.some((s) => !Number.isInteger(s) || s < 1 || s > 5)) throw new Error(`--farms must list farm sizes 1–5 (got ${opt.farms})`)
  const root = opt.keep !== undefined ? path.resolve(opt.keep) : await mkdtemp(path.join(os.tmpdir(), 'rs-bench-estimate-'))
  await mkdir(root, { recursive: true })
  if (opt.keep === undefined) tempRoot = root
  const began = Date.now()
  try {
    const tools = await locateFfmpeg()
    const all: Record<string, string> = {
      sample: await writeSample(path.join(root, 'sample'), tools),
      kitchen: await writeKitchenSink(path.join(root, 'kitchen'), tools.ffmpeg),
      dissolve: await writeDissolveCut(path.join(root, 'dissolve'), tools.ffmpeg),
      'colour-text': await writeColourTextIn(path.join(root, 'colour-text'), 300)
    }
    const only = opt.only?.split(',')
    const timelines = Object.entries(all).filter(([k]) => only === undefined || only.includes(k))
    if (timelines.length === 0) throw new Error(`--only names none of ${Object.keys(all).join(', ')}`)
    const farms: Farm[] = []
    for (const size of sizes) farms.push(await startFarm(root, size))
    console.log(`farms up after ${((Date.now() - began) / 1000).toFixed(0)} s; ${reps} rep(s) × ${farms.length} farm(s) × ${timelines.length} timeline(s), preset ffv1, ${COST_PER_HOUR} USD/h per agent`)
    const pairs: Pair[] = []
    const out = path.join(root, 'out')
    await mkdir(out, { recursive: true })
    for (let rep = 1; rep <= reps; rep++) {
      for (const f of farms) {
        for (const [name, timeline] of timelines) {
          const est = await cli(['estimate', timeline, '--preset', 'ffv1', '--json', '--state-dir', f.first])
          if (est.code !== 0) throw new Error(`estimate ${name}: ${est.stderr.trim()}`)
          const e = JSON.parse(est.stdout) as Estimate
          const file = path.join(out, `${name}-${f.size}-${rep}.mkv`)
          const t0 = performance.now()
          const job = await f.farm.submit({ timeline, output: file, preset: 'ffv1', name: `bench ${name}` })
          const ctl = AbortSignal.timeout(300_000)
          const final = await f.farm.wait(job.jobId, { signal: ctl, pollMs: 200 })
          const measS = (performance.now() - t0) / 1000
          if (final.status !== 'done') throw new Error(`job ${name} on ${f.name}: ${final.status} ${final.error ?? ''}`)
          await rm(file, { force: true })
          const p: Pair = { farm: f.name, timeline: name, rep, predS: e.seconds.expected, measS, predUsd: e.cost.expected, measUsd: final.actualCost, chunks: final.chunks.length }
          pairs.push(p)
          console.log(`rep ${rep}  ${f.name.padEnd(9)} ${name.padEnd(12)} ${String(p.chunks).padStart(2)} chunks  time ${p.predS.toFixed(2).padStart(6)} s vs ${p.measS.toFixed(2).padStart(6)} s (${pct(p.predS / p.measS - 1)})  cost $${p.predUsd.toFixed(6)} vs $${p.measUsd.toFixed(6)} (${pct(p.predUsd / p.measUsd - 1)})`)
        }
      }
    }
    // Medians over the reps of each (farm, timeline), then the summary.
    console.log('\nmedians over the reps (predicted vs measured):')
    console.log('| Farm | Timeline | Chunks | Predicted s | Measured s (min–max) | Time error | Predicted $ | Measured $ | Cost error |')
    console.log('|---|---|---|---|---|---|---|---|---|')
    const errs: Array<{ farm: string; t: number; c: number }> = []
    for (const f of farms) {
      for (const [name] of timelines) {
        const ps = pairs.filter((p) => p.farm === f.name && p.timeline === name)
        const row = { predS: median(ps.map((p) => p.predS)), measS: median(ps.map((p) => p.measS)), predUsd: median(ps.map((p) => p.predUsd)), measUsd: median(ps.map((p) => p.measUsd)), chunks: median(ps.map((p) => p.chunks)) }
        const t = row.predS / row.measS - 1
        const c = row.predUsd / row.measUsd - 1
        errs.push({ farm: f.name, t, c })
        const ms = ps.map((p) => p.measS)
        console.log(`| ${f.name} | ${name} | ${row.chunks} | ${row.predS.toFixed(2)} | ${row.measS.toFixed(2)} (${Math.min(...ms).toFixed(2)}–${Math.max(...ms).toFixed(2)}) | ${pct(t)} | ${row.predUsd.toFixed(6)} | ${row.measUsd.toFixed(6)} | ${pct(c)} |`)
      }
    }
    const summary = (label: string, es: typeof errs): void => {
      const at = es.map((e) => Math.abs(e.t)); const ac = es.map((e) => Math.abs(e.c))
      console.log(`${label}: time |error| median ${(median(at) * 100).toFixed(1)} %, worst ${(Math.max(...at) * 100).toFixed(1)} %; cost |error| median ${(median(ac) * 100).toFixed(1)} %, worst ${(Math.max(...ac) * 100).toFixed(1)} %`)
    }
    console.log('')
    for (const f of farms) summary(f.name, errs.filter((e) => e.farm === f.name))
    summary('all', errs)
    console.log(`\nmethod: estimate via \`renderswarm estimate --json\` just before each submit; measured = POST /v1/jobs → job 'done' (SDK wait); cost = the job's actualCost (Σ chunk lease→done × USD/h). ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${new Date().toISOString()}, ${((Date.now() - began) / 1000).toFixed(0)} s in all`)
  } finally {
    await stopAll()
    if (opt.keep === undefined) await rm(root, { recursive: true, force: true })
  }
}

process.once('SIGINT', () => { void stopAll().then(async () => { if (tempRoot !== undefined) await rm(tempRoot, { recursive: true, force: true }); process.exit(130) }) })
main().catch(async (err: Error) => { console.error(`bench/estimate: ${err.stack ?? err.message}`); await stopAll(); process.exit(1) })
