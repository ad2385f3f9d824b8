/**
 * A strict parser of the Prometheus text exposition format (0.0.4), for tests: anything a
 * scraper could misread throws, naming the line.
 *
 *   const families = parsePromText(await (await fetch(url + '/metrics', { headers })).text())
 *   families.get('renderswarm_fps')!.samples[0]!.value
 *   sampleValue(families, 'renderswarm_node_up', { node: 'solo' })
 *
 * Checks: HELP and TYPE lines (at most one each per family, TYPE before its samples, known
 * types), metric and label names, label value escapes (only \\ \" \n), no duplicate labels or
 * series, numeric values (floats, NaN, ±Inf as Go's ParseFloat reads them) and optional integer timestamps, each family's
 * samples together, and sample names that belong to their family (_bucket/_sum/_count for
 * histograms, _sum/_count for summaries).
 */
export interface Sample { name: string; labels: Record<string, string>; value: number }
export interface Family { name: string; help?: string; type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped'; samples: Sample[] }

export class PromTextError extends Error {
  override readonly name = 'PromTextError'
}

const METRIC = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])
const FLOAT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/

/** As Go's strconv.ParseFloat reads it (Prometheus does): NaN and Inf in any case (prom-client writes "Nan"). */
function parseValue (s: string, where: string): number {
  if (/^nan$/i.test(s)) return NaN
  if (/^\+?inf(inity)?$/i.test(s)) return Infinity
  if (/^-inf(inity)?$/i.test(s)) return -Infinity
  if (!FLOAT.test(s)) throw new PromTextError(`${where}: "${s}" is not a number`)
  return Number(s)
}

/** Reads `{a="x",b="y"}` from position i of line; returns the labels and the position after '}'. */
function parseLabels (line: string, i: number, where: string): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {}
  i++ // '{'
  for (;;) {
    if (line[i] === '}') return { labels, end: i + 1 }
    const nameEnd = line.indexOf('=', i)
    if (nameEnd < 0) throw new PromTextError(`${where}: label without "="`)
    const name = line.slice(i, nameEnd)
    if (!LABEL.test(name) || name.startsWith('__')) throw new PromTextError(`${where}: bad label name "${name}"`)
    if (name in labels) throw new PromTextError(`${where}: label "${name}" given twice`)
    i = nameEnd + 1
    if (line[i] !== '"') throw new PromTextError(`${where}: label ${name}'s value must be quoted`)
    i++
    let value = ''
    for (;;) {
      const ch = line[i]
      if (ch === undefined) throw new PromTextError(`${where}: label ${name}'s value is not closed`)
      if (ch === '"') { i++; break }
      if (ch === '\\') {
        const next = line[i + 1]
        if (next === '\\') value += '\\'
        else if (next === '"') value += '"'
        else if (next === 'n') value += '\n'
        else throw new PromTextError(`${where}: bad escape "\\${next ?? ''}" in label ${name}`)
        i += 2
        continue
      }
      value += ch
      i++
    }
    labels[name] = value
    if (line[i] === ',') { i++; continue }
    if (line[i] !== '}') throw new PromTextError(`${where}: expected "," or "}" after label ${name}`)
  }
}

function familyOf (sample: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(sample)
  if (direct !== undefined) return direct
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!sample.endsWith(suffix)) continue
    const f = families.get(sample.slice(0, -suffix.length))
    if (f !== undefined && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return f
  }
  return undefined
}

export function parsePromText (text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  const helps = new Map<string, string>()
  const series = new Set<string>()
  const closed = new Set<string>()
  let open: Family | undefined
  if (text !== '' && !text.endsWith('\n')) throw new PromTextError('the exposition must end with a newline')
  const lines = text.split('\n')
  lines.pop()
  for (const [n, line] of lines.entries()) {
    const where = `line ${n + 1}`
    if (line.trim() === '') continue
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line)
      if (m === null) continue // a plain comment
      const [, kind, name, rest] = m as unknown as [string, 'HELP' | 'TYPE', string, string | undefined]
      if (!METRIC.test(name)) throw new PromTextError(`${where}: bad metric name "${name}"`)
      if (kind === 'HELP') {
        if (helps.has(name)) throw new PromTextError(`${where}: second HELP for ${name}`)
        if (/\\(?![\\n])/.test(rest ?? '')) throw new PromTextError(`${where}: bad escape in HELP for ${name}`)
        helps.set(name, rest ?? '')
        const f = families.get(name)
        if (f !== undefined) f.help = rest ?? ''
      } else {
        if (rest === undefined || !TYPES.has(rest)) throw new PromTextError(`${where}: unknown type "${rest ?? ''}" for ${name}`)
        if (families.has(name)) throw new PromTextError(`${where}: second TYPE for ${name}, or TYPE after its samples`)
        const f: Family = { name, type: rest as Family['type'], samples: [], ...(helps.has(name) ? { help: helps.get(name)! } : {}) }
        families.set(name, f)
        if (open !== undefined) closed.add(open.name)
        open = f
      }
      continue
    }
    const nameEnd = line.search(/[{ ]/)
    if (nameEnd <= 0) throw new PromTextError(`${where}: not a sample: "${line.slice(0, 80)}"`)
    const name = line.slice(0, nameEnd)
    if (!METRIC.test(name)) throw new PromTextError(`${where}: bad metric name "${name}"`)
    let labels: Record<string, string> = {}
    let i = nameEnd
    if (line[i] === '{') ({ labels, end: i } = parseLabels(line, i, where))
    if (line[i] !== ' ') throw new PromTextError(`${where}: expected a space before the value`)
    const parts = line.slice(i + 1).split(' ')
    if (parts.length < 1 || parts.length > 2 || parts[0] === '') throw new PromTextError(`${where}: expected "value [timestamp]"`)
    const value = parseValue(parts[0]!, `${where} (${name})`)
    if (parts[1] !== undefined && !/^-?\d+$/.test(parts[1])) throw new PromTextError(`${where}: timestamp "${parts[1]}" is not whole milliseconds`)
    let fam = familyOf(name, families)
    if (fam === undefined) {
      // A sample without TYPE is untyped, a family of its own.
      fam = { name, type: 'untyped', samples: [] }
      families.set(name, fam)
      if (open !== undefined) closed.add(open.name)
      open = fam
    }
    if (fam !== open || closed.has(fam.name)) throw new PromTextError(`${where}: sample of ${fam.name} outside its family's block`)
    if (fam.type === 'counter' && !(value >= 0)) throw new PromTextError(`${where}: counter ${name} is ${value}`)
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`
    if (series.has(key)) throw new PromTextError(`${where}: series ${name} with these labels appears twice`)
    series.add(key)
    fam.samples.push({ name, labels, value })
  }
  for (const name of helps.keys()) if (!families.has(name)) throw new PromTextError(`HELP for ${name} without a TYPE or samples`)
  return families
}

/** The value of the one sample of `name` whose labels include `labels` (throws if none or several). */
export function sampleValue (families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const fam = familyOf(name, families)
  const hits = (fam?.samples ?? []).filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  if (hits.length !== 1) throw new Error(`${hits.length} samples of ${name}${JSON.stringify(labels)}`)
  return hits[0]!.value
}
