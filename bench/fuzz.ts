/**
 * The long fuzz run: `npm run fuzz -- --minutes N [--seed S] [--min-cases C] [--only a,b,…]`.
 * `--only` runs some targets (by name), so several processes can share the targets out.
 *
 * Every target of test/fuzz/harness.ts gets batches of 1000 generated cases, the target with the
 * fewest cases so far going next, until the time is up; so all targets end with about the same
 * count. Prints, per decoder: cases, crashes, cases over 1 s (slow: a hang, or a loaded machine;
 * each listed), slowest case, and the heap growth (after a forced GC) over the run; exits 1 on any
 * crash or slow case, or when a target got fewer than --min-cases (default 0).
 * Method: fast-check generators (random JSON and bytes, mutated valid seeds), each case checked
 * by checkCase (expected error class, message ≤ 2000 characters, ≤ 1000 ms).
 */
import fc from 'fast-check'
import os from 'node:os'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { checkCase, checkSeeds, FuzzCrash, FuzzHang, TARGETS } from '../test/fuzz/harness.ts'

function arg (name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  if (i < 0) return fallback
  const n = Number(process.argv[i + 1])
  if (!Number.isFinite(n) || n < 0) { console.error(`--${name} needs a number ≥ 0, got "${process.argv[i + 1] ?? ''}"`); process.exit(2) }
  return n
}
const minutes = arg('minutes', 1)
const seed = arg('seed', Date.now() % 2 ** 31)
const minCases = arg('min-cases', 0)
const BATCH = 1000
const onlyAt = process.argv.indexOf('--only')
const only = onlyAt < 0 ? undefined : new Set((process.argv[onlyAt + 1] ?? '').split(','))
const targets = TARGETS.filter((t) => only === undefined || only.has(t.name))
if (targets.length === 0) { console.error(`--only names none of: ${TARGETS.map((t) => t.name).join(', ')}`); process.exit(2) }

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
checkSeeds()
gc()
const heapStart = process.memoryUsage().heapUsed
let heapMax = heapStart

interface Row { name: string; cases: number; crashes: number; slow: number; slowestMs: number; seconds: number; first?: string }
const rows: Row[] = targets.map((t) => ({ name: t.name, cases: 0, crashes: 0, slow: 0, slowestMs: 0, seconds: 0 }))
const endAt = Date.now() + minutes * 60_000
let batch = 0
while (Date.now() < endAt) {
  const i = rows.reduce((best, r, k) => (r.cases < rows[best]!.cases ? k : best), 0)
  const t = targets[i]!
  const row = rows[i]!
  const began = performance.now()
  const r = fc.check(fc.property(t.input, (x) => {
    const c0 = performance.now()
    try { checkCase(t, x, 1000) } catch (err) {
      if (!(err instanceof FuzzCrash)) throw err
      if (err instanceof FuzzHang) row.slow++
      else row.crashes++
      row.first ??= `${err.message}\n  input: ${JSON.stringify(x instanceof Uint8Array ? Buffer.from(x).toString('base64') : x)?.slice(0, 500)}`
    }
    row.slowestMs = Math.max(row.slowestMs, performance.now() - c0)
  }), { numRuns: BATCH, seed: seed + batch++, endOnFailure: true })
  if (r.failed) { console.error(`harness error in ${t.name}: ${String(r.errorInstance)}`); process.exit(2) }
  row.cases += BATCH
  row.seconds += (performance.now() - began) / 1000
  if (batch % 20 === 0) { gc(); heapMax = Math.max(heapMax, process.memoryUsage().heapUsed) }
}
gc()
const heapEnd = process.memoryUsage().heapUsed
heapMax = Math.max(heapMax, heapEnd)

const MiB = 1024 * 1024
console.log(`fuzz: ${minutes} min, seed ${seed}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), node ${process.version}, ${new Date().toISOString()}`)
console.log('decoder               cases  crashes  slow  cases/s  slowest ms')
for (const r of rows) console.log(`${r.name.padEnd(20)} ${String(r.cases).padStart(7)} ${String(r.crashes).padStart(8)} ${String(r.slow).padStart(5)} ${String(Math.round(r.cases / Math.max(r.seconds, 1e-9))).padStart(8)} ${r.slowestMs.toFixed(1).padStart(11)}`)
const total = rows.reduce((n, r) => n + r.cases, 0)
const crashes = rows.reduce((n, r) => n + r.crashes, 0)
const slow = rows.reduce((n, r) => n + r.slow, 0)
console.log(`total ${total} cases, ${crashes} crashes, ${slow} over 1 s; heap after GC: start ${(heapStart / MiB).toFixed(1)} MiB, end ${(heapEnd / MiB).toFixed(1)} MiB, max ${(heapMax / MiB).toFixed(1)} MiB`)
for (const r of rows) if (r.first !== undefined) console.log(`first crash in ${r.name}: ${r.first}`)
const short = rows.filter((r) => r.cases < minCases)
if (short.length > 0) console.log(`under --min-cases ${minCases}: ${short.map((r) => r.name).join(', ')}`)
process.exit(crashes > 0 || slow > 0 || short.length > 0 ? 1 : 0)
