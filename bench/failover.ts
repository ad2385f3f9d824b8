/**
 * Failure figures (issue D): how fast the farm notices a dead worker (detection), how fast a
 * dead coordinator is replaced (failover), and how much longer a job takes when one of those
 * happens mid-job than the same job without a failure (time lost). Three workers and an editor
 * in network namespaces (real mDNS, real TCP), the 720p colour+text timeline of the failure tests
 * at 900 frames, --chunk-seconds 2. Needs root and iproute2.
 *
 *   node bin/run-ts.js bench/failover.ts [--runs 3] [--quick] [--logs DIR]     # DIR: every agent's log
 * (--quick: 1 run of 450 frames, for `npm run bench`)
 *   npm run bench:failover
 *
 * Each run renders the job three times, interleaved: (n) no failure, (w) kill -9 of a worker
 * that holds a chunk (not the coordinator), (c) kill -9 of the coordinator once two chunks are
 * done. Job time is from submit to the owner's 'done' record; detection is kill → the
 * coordinator logs the worker's chunks back in the queue; failover is kill → every survivor
 * follows a new coordinator. (Detection is when the coordinator declares the worker dead, which is
 * also when its chunks go back to the queue.) Killed agents are restarted after their job, and the next render
 * waits until all four members are alive. Every output is checked frame by frame against a
 * one-machine render. Prints medians and the time lost relative to (n); the last stdout line is the BENCH
 * line (bench/result.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { locateFfmpeg } from '../agent/ffmpeg.ts'
import { allAlive, farmTimeline, jobEnd, jobOf, killAll, logTime, startAgent, startFarm, statusOf, submitDetached, viaOf, type AgentProc, type TestFarm } from '../test/helpers/agents.ts'
import { cleanupTmp, frameHashes, tmpDir } from '../test/helpers/media.ts'
import { canUseNetns, createLan, destroyLan, type Lan } from '../test/helpers/netns.ts'
import { waitFor } from '../test/helpers/wait.ts'
import { printBench } from './result.ts'

const { values: opt } = parseArgs({ options: { runs: { type: 'string' }, quick: { type: 'boolean', default: false }, logs: { type: 'string' } }, strict: true })
const RUNS = Number(opt.runs ?? (opt.quick === true ? 1 : 3))
const FRAMES = opt.quick === true ? 450 : 900
const EXTRA = ['--chunk-seconds', '2']
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length === 0 ? NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2 }

interface Status { rendering: { coordinator: { leader: string | null; term: number } } }

async function main (): Promise<void> {
  if (!canUseNetns()) throw new Error('bench/failover needs root and iproute2 (ip)')
  if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 20) throw new Error('--runs must be 1–20')
  const dir = await tmpDir('bench-failover')
  const tools = await locateFfmpeg()
  let lan: Lan | undefined
  // Stopped from outside (bench/all.ts over its time limit, Ctrl-C): agents, namespaces and files go too.
  const onSignal = (sig: string): void => {
    process.stderr.write(`bench/failover: ${sig}: stopping the agents, removing the namespaces and files\n`)
    void killAll().then(async () => { if (lan !== undefined) destroyLan(lan); await cleanupTmp() }).finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    lan = createLan(`bf${process.pid % 100000}`, 4, `10.76.${process.pid % 200}`)
    const farm = await startFarm(lan.hosts, dir, EXTRA)
    const { timeline, reference } = await farmTimeline(dir, tools, FRAMES, 'failover')
    const editor = (): ReturnType<typeof viaOf> => viaOf(farm, farm.editor)
    const all = (): AgentProc[] => [...farm.workers, farm.editor]
    const restart = (victim: AgentProc): void => {
      const i = farm.workers.indexOf(victim)
      farm.workers[i] = startAgent(farm.hosts[i]!, dir, victim.name, EXTRA)
    }
    const dumpLogs = async (): Promise<void> => {
      if (opt.logs === undefined) return
      await mkdir(opt.logs, { recursive: true })
      for (const a of all()) await writeFile(path.join(opt.logs, `${a.name}-${a.child.pid ?? 0}.log`), a.log.join('\n'))
    }
    process.on('exit', () => { if (opt.logs !== undefined) mkdirSync(opt.logs, { recursive: true }); if (opt.logs !== undefined) for (const a of all()) writeFileSync(path.join(opt.logs, `${a.name}-${a.child.pid ?? 0}.log`), a.log.join('\n')) })
    const times: Record<'n' | 'w' | 'c', number[]> = { n: [], w: [], c: [] }
    const detection: number[] = []
    const failover: number[] = []
    for (let run = 1; run <= RUNS; run++) {
      for (const variant of ['n', 'w', 'c'] as const) {
        await allAlive(farm, editor())
        const leader = (await statusOf<Status>(editor().ns, editor().stateDir)).rendering.coordinator.leader
        const out = path.join(dir, `run${run}-${variant}.mkv`)
        const t0 = Date.now()
        const jobId = await submitDetached(editor(), timeline, out)
        let victim: AgentProc | undefined
        if (variant === 'w') {
          const name = await waitFor(async () => {
            const c = (await jobOf(editor(), jobId))?.chunks.find((c) => c.status === 'leased' && c.node !== leader)
            return c === undefined ? undefined : [...farm.peerOf].find(([, id]) => id === c.node)?.[0]
          }, 120_000, 'a worker to be rendering', 100)
          victim = farm.workers.find((w) => w.name === name)!
          const coordinator = all().find((a) => farm.peerOf.get(a.name) === leader)!
          const killedAt = Date.now()
          victim.child.kill('SIGKILL')
          const line = await waitFor(() => coordinator.log.find((l) => logTime(l) >= killedAt && new RegExp(` member ${victim!.name} \\S+ is dead`).test(l)), 30_000, `the coordinator to declare ${victim.name} dead`)
          detection.push(logTime(line) - killedAt)
        } else if (variant === 'c') {
          await waitFor(async () => ((await jobOf(editor(), jobId))?.chunks.filter((c) => c.status === 'done').length ?? 0) >= 2 ? true : undefined, 120_000, 'two chunks done', 100)
          victim = farm.workers.find((w) => farm.peerOf.get(w.name) === leader)!
          const killedAt = Date.now()
          victim.child.kill('SIGKILL')
          const survivors = all().filter((a) => a !== victim)
          const lines = await waitFor(() => {
            const ls = survivors.map((a) => a.log.find((l) => logTime(l) > killedAt && / coordinator for term \d+: /.test(l)))
            return ls.every((l) => l !== undefined) ? ls as string[] : undefined
          }, 30_000, 'a new coordinator')
          failover.push(Math.max(...lines.map(logTime)) - killedAt)
        }
        const done = await jobEnd(editor(), jobId, 600_000)
        const seconds = (Date.now() - t0) / 1000
        if (done.status !== 'done') throw new Error(`run ${run} (${variant}): job ${done.status}: ${done.error ?? ''}`)
        const same = JSON.stringify(await frameHashes(tools.ffmpeg, out)) === JSON.stringify(reference)
        if (!same) throw new Error(`run ${run} (${variant}): the output differs from the one-machine render`)
        times[variant].push(seconds)
        process.stderr.write(`run ${run} ${variant === 'n' ? 'no failure' : variant === 'w' ? 'worker killed' : 'coordinator killed'}: ${seconds.toFixed(1)} s, identical\n`)
        if (victim !== undefined) { await dumpLogs(); restart(victim) }
      }
    }
    const n = median(times.n)
    const lost = (v: 'w' | 'c'): string => `${(median(times[v]) - n).toFixed(1)} s (${((median(times[v]) / n - 1) * 100).toFixed(0)}%)`
    process.stdout.write([
      `failover figures, medians of ${RUNS} run(s) on ${new Date().toISOString().slice(0, 10)}, 3 workers + editor in network namespaces, ${FRAMES} frames 720p ffv1, 2 s chunks`,
      `  job time, no failure          ${n.toFixed(1)} s   (${times.n.map((t) => t.toFixed(1)).join(', ')})`,
      `  job time, worker killed       ${median(times.w).toFixed(1)} s   (${times.w.map((t) => t.toFixed(1)).join(', ')})   time lost ${lost('w')}`,
      `  job time, coordinator killed  ${median(times.c).toFixed(1)} s   (${times.c.map((t) => t.toFixed(1)).join(', ')})   time lost ${lost('c')}`,
      `  detection (kill → the coordinator declares the worker dead and requeues its chunks)   ${median(detection)} ms   (${detection.join(', ')})`,
      `  failover (kill → every survivor follows a new coordinator)   ${median(failover)} ms   (${failover.join(', ')})`,
      ''
    ].join('\n'))
    // The failure tests (test/e2e/farm-failures) assert these bounds.
    const how = `3 workers + editor in namespaces, ${FRAMES} frames 720p ffv1, 2 s chunks, median of ${RUNS}`
    printBench('bench/failover.ts', [
      { figure: 'detection: worker killed → declared dead, chunks requeued', value: `${median(detection)} ms`, target: '< 4000 ms', pass: median(detection) < 4000, method: how },
      { figure: 'failover: coordinator killed → survivors follow a new one', value: `${median(failover)} ms`, target: '< 5000 ms', pass: median(failover) < 5000, method: how },
      { figure: 'job time, no failure', value: `${n.toFixed(1)} s`, target: '', pass: null, method: how },
      { figure: 'time lost, worker killed mid-job', value: lost('w'), target: '', pass: null, method: `${how}; vs no failure` },
      { figure: 'time lost, coordinator killed mid-job', value: lost('c'), target: '', pass: null, method: `${how}; vs no failure` }
    ])
  } finally {
    await killAll()
    if (lan !== undefined) destroyLan(lan)
    await cleanupTmp()
  }
}

main().catch((err: unknown) => { process.stderr.write(`bench/failover: ${(err as Error).stack ?? String(err)}\n`); process.exit(1) })
