/**
 * The BENCH line: every bench script's last stdout line, one JSON object, which `npm run bench`
 * (bench/all.ts) collects into one table.
 *
 *   printBench('bench/diy.ts', [{ figure: 'DIY time', value: '12.3 s', target: '', pass: null, method: '…' }])
 *   // → BENCH {"script":"bench/diy.ts","rows":[…]}
 *   const r = parseBench(stdoutText)     // the last BENCH line of a script's output, or undefined
 *
 * `pass` is null where a figure has no target. A script prints it last and exits 0 whether its
 * targets are met or not (non-zero only on an error).
 */

export interface BenchRow {
  figure: string
  value: string
  /** What the figure should be ('≤ 1.05', '≥ 1.8 ×'); '' where there is none. */
  target: string
  pass: boolean | null
  method: string
}

export interface BenchResult { script: string; rows: BenchRow[] }

export const BENCH_PREFIX = 'BENCH '

/** The BENCH line for `rows` (no newline). */
export function benchLine (script: string, rows: BenchRow[]): string {
  return BENCH_PREFIX + JSON.stringify({ script, rows } satisfies BenchResult)
}

/** Prints the BENCH line; call it last, after everything else the script writes to stdout. */
export function printBench (script: string, rows: BenchRow[]): void {
  process.stdout.write(benchLine(script, rows) + '\n')
}

export class BadBenchLineError extends Error {}

/**
 * The last BENCH line in `text` (a script's stdout), checked; undefined when there is none.
 * Throws BadBenchLineError when the last one is not a well-formed result.
 */
export function parseBench (text: string): BenchResult | undefined {
  const line = text.split('\n').map((l) => l.trim()).filter((l) => l.startsWith(BENCH_PREFIX)).at(-1)
  if (line === undefined) return undefined
  let v: unknown
  try {
    v = JSON.parse(line.slice(BENCH_PREFIX.length))
  } catch (err) {
    throw new BadBenchLineError(`parsing the BENCH line: ${(err as Error).message}`)
  }
  const o = v as Partial<BenchResult> | null
  if (o === null || typeof o !== 'object' || typeof o.script !== 'string' || !Array.isArray(o.rows)) throw new BadBenchLineError('the BENCH line is not {"script": …, "rows": […]}')
  const rows = o.rows.map((r: unknown, i: number): BenchRow => {
    const x = r as Partial<Record<keyof BenchRow, unknown>> | null
    if (x === null || typeof x !== 'object' || typeof x.figure !== 'string') throw new BadBenchLineError(`BENCH row ${i} has no figure`)
    const pass = x.pass === true || x.pass === false ? x.pass : null
    return { figure: x.figure, value: String(x.value ?? ''), target: String(x.target ?? ''), pass, method: String(x.method ?? '') }
  })
  return { script: o.script, rows }
}
