/**
 * Every benchmark in one run and one table (issue H): each bench script is run as a child
 * process, one after another, with --quick; their output goes to one log file; each one's last
 * stdout line (the BENCH line, bench/result.ts) becomes rows of the table.
 *
 *   node bin/run-ts.js bench/all.ts [--only diy,estimate] [--log FILE] [--budget-s 900] [--limit-factor 1]
 *   npm run bench
 *
 * Each script has a time limit (its quick setting's measured time with a margin, and never past
 * the whole run's budget; --limit-factor scales them for a slower machine); one that overruns is stopped (SIGTERM to its process group, which
 * lets it remove its namespaces and files, then SIGKILL) and reported as "timed out". A script
 * that needs root is "skipped: needs root" when not run as root; one whose file does not exist
 * is "missing". Prints the table — figure | value | target | pass | script — and the total
 * wall time. Exits 0 when every script that ran printed its BENCH line (targets met or not),
 * 1 when one failed, timed out or printed none.
 */
import { spawn } from 'node:child_process'
import { createWriteStream, existsSync, mkdirSync, type WriteStream } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { BadBenchLineError, parseBench, type BenchRow } from './result.ts'

interface Script {
  name: string
  file: string
  /** Seconds it may run with --quick before it is stopped. */
  limitS: number
  root: boolean
}

/**
 * In the order of issue H. Limits: about twice each quick run's time on the 2-core machine when it
 * is not shared (measured 2026-11-29 under a load average near 20 from five other people's work:
 * render-overhead 113 s, farm 352 s, dispatch 102 s, transfer 30 s, failover over 540 s at 900
 * frames (450 now), estimate 439 s, sim 87 s, diy 275 s, membership 149 s; about a third of that
 * on a quiet machine). The whole run's budget caps them all.
 */
const SCRIPTS: Script[] = [
  { name: 'render-overhead', file: 'bench/render-overhead.ts', limitS: 120, root: false },
  { name: 'farm', file: 'bench/farm.ts', limitS: 240, root: true },
  { name: 'dispatch', file: 'bench/dispatch.ts', limitS: 120, root: false },
  { name: 'transfer', file: 'bench/transfer.ts', limitS: 60, root: false },
  { name: 'failover', file: 'bench/failover.ts', limitS: 240, root: true },
  { name: 'estimate', file: 'bench/estimate.ts', limitS: 240, root: false },
  { name: 'sim', file: 'bench/sim/run.ts', limitS: 120, root: false },
  { name: 'diy', file: 'bench/diy.ts', limitS: 180, root: false },
  { name: 'membership', file: 'bench/membership.ts', limitS: 120, root: true }
]
/** Time a stopped script gets to clean up after SIGTERM before its process group is killed. */
const GRACE_MS = 20_000

const { values: opt } = parseArgs({
  options: { only: { type: 'string' }, log: { type: 'string' }, 'budget-s': { type: 'string', default: '900' }, 'limit-factor': { type: 'string', default: '1' } },
  strict: true
})
const REPO = fileURLToPath(new URL('..', import.meta.url))
const RUN_TS = path.join(REPO, 'bin', 'run-ts.js')

type Outcome =
  | { kind: 'ok'; rows: BenchRow[]; seconds: number; code: number }
  | { kind: 'missing' | 'skipped' | 'no time left'; why: string }
  | { kind: 'timed out' | 'failed' | 'no BENCH line'; why: string; seconds: number; rows: BenchRow[] }

/** The running script's process group (detached: a terminal's Ctrl-C does not reach it by itself). */
let current: number | undefined
let interrupted = false

/** Runs one script to its end or its limit; its output goes to `log`, each line tagged with its name. */
function runScript (s: Script, limitS: number, log: WriteStream): Promise<Outcome> {
  return new Promise((resolve) => {
    const began = performance.now()
    log.write(`\n===== ${s.file} --quick (limit ${limitS} s) ${new Date().toISOString()}\n`)
    // Its own process group: a time-out stops the script and everything it started.
    const child = spawn(process.execPath, [RUN_TS, path.join(REPO, s.file), '--quick'], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    current = child.pid
    let stdout = ''
    let timedOut = false
    const tag = (stream: 'out' | 'err') => (d: Buffer): void => {
      const text = d.toString()
      if (stream === 'out') stdout += text
      log.write(text.split('\n').map((l, i, a) => i === a.length - 1 && l === '' ? '' : `[${s.name}${stream === 'err' ? ' stderr' : ''}] ${l}\n`).join(''))
    }
    child.stdout!.on('data', tag('out'))
    child.stderr!.on('data', tag('err'))
    const signal = (sig: NodeJS.Signals): void => { try { process.kill(-child.pid!, sig) } catch { /* gone */ } }
    let killTimer: NodeJS.Timeout | undefined
    const limitTimer = setTimeout(() => {
      timedOut = true
      log.write(`[${s.name}] over its limit of ${limitS} s: SIGTERM to its process group\n`)
      signal('SIGTERM')
      killTimer = setTimeout(() => { log.write(`[${s.name}] still there ${GRACE_MS / 1000} s later: SIGKILL\n`); signal('SIGKILL') }, GRACE_MS)
    }, limitS * 1000)
    child.on('error', (err) => {
      clearTimeout(limitTimer)
      resolve({ kind: 'failed', why: err.message, seconds: (performance.now() - began) / 1000, rows: [] })
    })
    child.on('close', (code, sig) => {
      current = undefined
      clearTimeout(limitTimer)
      if (killTimer !== undefined) clearTimeout(killTimer)
      // Whatever is left of its group (a grandchild that outlived it) goes too.
      signal('SIGKILL')
      const seconds = (performance.now() - began) / 1000
      log.write(`===== ${s.file}: ${timedOut ? 'timed out' : `exit ${code ?? sig}`} after ${seconds.toFixed(1)} s\n`)
      let rows: BenchRow[] = []
      let bad: string | undefined
      try {
        rows = parseBench(stdout)?.rows ?? []
      } catch (err) {
        if (!(err instanceof BadBenchLineError)) throw err
        bad = err.message
      }
      if (timedOut) resolve({ kind: 'timed out', why: `stopped after its limit of ${limitS} s`, seconds, rows })
      else if (code !== 0) resolve({ kind: 'failed', why: `exit ${code ?? sig}`, seconds, rows })
      else if (rows.length === 0) resolve({ kind: 'no BENCH line', why: bad ?? 'its last stdout line is not a BENCH line', seconds, rows })
      else resolve({ kind: 'ok', rows, seconds, code: 0 })
    })
  })
}

async function main (): Promise<number> {
  const began = performance.now()
  const budgetS = Number(opt['budget-s'])
  if (!Number.isFinite(budgetS) || budgetS < 60 || budgetS > 7200) throw new Error(`--budget-s must be 60–7200 (got ${opt['budget-s']})`)
  const factor = Number(opt['limit-factor'])
  if (!Number.isFinite(factor) || factor < 0.1 || factor > 10) throw new Error(`--limit-factor must be 0.1–10 (got ${opt['limit-factor']})`)
  const only = opt.only?.split(',').map((x) => x.trim())
  const unknown = only?.filter((n) => !SCRIPTS.some((s) => s.name === n)) ?? []
  if (unknown.length > 0) throw new Error(`--only: no script named ${unknown.join(', ')} (there are ${SCRIPTS.map((s) => s.name).join(', ')})`)
  const scripts = SCRIPTS.filter((s) => only === undefined || only.includes(s.name))
  const logFile = path.resolve(opt.log ?? path.join(os.tmpdir(), `renderswarm-bench-${new Date().toISOString().replace(/[:.]/g, '-')}.log`))
  mkdirSync(path.dirname(logFile), { recursive: true })
  const log = createWriteStream(logFile, { flags: 'a' })
  log.on('error', (err) => { console.error(`bench: writing ${logFile}: ${err.message} (the table still comes)`) })
  console.log(`bench: ${scripts.length} script(s) with --quick, one at a time, in ${budgetS} s at most; their output: ${logFile}`)
  const isRoot = process.getuid?.() === 0
  const outcomes: Array<{ s: Script; o: Outcome }> = []
  // Ctrl-C or a CI time-out: the running script is asked to stop (it removes what it made), no other starts.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      interrupted = true
      if (current !== undefined) { try { process.kill(-current, 'SIGTERM') } catch { /* gone */ } }
    })
  }
  for (const [i, s] of scripts.entries()) {
    let o: Outcome
    const leftS = budgetS - (performance.now() - began) / 1000
    if (interrupted) o = { kind: 'no time left', why: 'interrupted' }
    else if (!existsSync(path.join(REPO, s.file))) o = { kind: 'missing', why: `no ${s.file}` }
    else if (s.root && !isRoot) o = { kind: 'skipped', why: 'needs root' }
    else if (leftS < 30) o = { kind: 'no time left', why: `${leftS.toFixed(0)} s of the ${budgetS} s budget left` }
    else {
      const limitS = Math.floor(Math.min(s.limitS * factor, leftS - GRACE_MS / 1000))
      process.stdout.write(`[${i + 1}/${scripts.length}] ${s.file} --quick (limit ${limitS} s) … `)
      o = await runScript(s, limitS, log)
    }
    if (!('seconds' in o)) process.stdout.write(`[${i + 1}/${scripts.length}] ${s.file}: `)
    console.log(`${o.kind}${'seconds' in o ? ` in ${o.seconds.toFixed(1)} s` : ''}${o.kind !== 'ok' ? ` (${o.why})` : ''}${'rows' in o ? `, ${o.rows.length} figure(s)` : ''}`)
    outcomes.push({ s, o })
  }
  await new Promise<void>((resolve) => log.end(resolve))
  const totalS = (performance.now() - began) / 1000
  printTable(outcomes)
  console.log('')
  console.log(`scripts: ${outcomes.map(({ s, o }) => `${s.name} ${o.kind}${'seconds' in o ? ` ${o.seconds.toFixed(0)} s` : ''}`).join(', ')}`)
  console.log(`total wall time ${totalS.toFixed(0)} s (${(totalS / 60).toFixed(1)} min; budget ${budgetS} s); ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${new Date().toISOString()}; log ${logFile}`)
  return outcomes.some(({ o }) => o.kind === 'failed' || o.kind === 'timed out' || o.kind === 'no BENCH line') ? 1 : 0
}

function printTable (outcomes: Array<{ s: Script; o: Outcome }>): void {
  const header = ['figure', 'value', 'target', 'pass', 'script']
  const body: string[][] = []
  for (const { s, o } of outcomes) {
    const rows = 'rows' in o ? o.rows : []
    for (const r of rows) body.push([r.figure, r.value, r.target === '' ? '—' : r.target, r.pass === null ? '—' : r.pass ? 'yes' : 'NO', s.name])
    if (o.kind !== 'ok') body.push(['(whole script)', o.kind === 'skipped' ? `skipped: ${o.why}` : o.kind, '—', '—', s.name])
  }
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)))
  // A | inside a cell is escaped, so the table stays a Markdown table (docs/benchmarks.md quotes it).
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.replaceAll('|', '\\|').padEnd(widths[i]!)).join(' | ')} |`
  console.log('')
  console.log(line(header))
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`)
  for (const b of body) console.log(line(b))
}

main().then((code) => { process.exitCode = code }, (err: Error) => { console.error(`bench/all: ${err.stack ?? err.message}`); process.exitCode = 2 })
