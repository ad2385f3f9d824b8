/**
 * Splits a timeline's frames into chunk ranges (pure).
 *
 *   planChunks(600, 7)                          // 7 near-equal ranges covering [0, 600)
 *   planChunks(600, 4, { avoid: [[140, 160]] }) // no boundary strictly inside (140, 160)
 *
 *   planChunks(600, 7, { align: 60 })           // boundaries on keyframes: 60, 180, 240, …
 *
 * A boundary inside an `avoid` window (a construct that is not chunk-safe) moves to the
 * nearer edge of the window; ranges that end up empty are dropped.
 */
export interface ChunkRange { index: number; start: number; end: number }

export interface PlanOptions {
  /** [start, end) frame windows no boundary may fall strictly inside. */
  avoid?: ReadonlyArray<readonly [number, number]>
  /** Boundaries only on multiples of this many frames (an inter-frame codec's keyframe interval). */
  align?: number | undefined
}

export class PlanError extends Error {
  override readonly name = 'PlanError'
}

export function planChunks (duration: number, count: number, opts: PlanOptions = {}): ChunkRange[] {
  if (!Number.isInteger(duration) || duration <= 0) throw new PlanError(`duration must be a positive whole number of frames (got ${duration})`)
  if (!Number.isInteger(count) || count < 1) throw new PlanError(`chunk count must be a whole number ≥ 1 (got ${count})`)
  const n = Math.min(count, duration)
  const cuts = new Set<number>()
  for (let i = 1; i < n; i++) {
    const align = opts.align ?? 1
    if (!Number.isInteger(align) || align < 1) throw new PlanError(`alignment must be a whole number ≥ 1 (got ${align})`)
    let cut = Math.round((i * duration) / n / align) * align
    for (const [s, e] of opts.avoid ?? []) {
      if (cut > s && cut < e) cut = cut - s <= e - cut ? s : e
    }
    if (cut > 0 && cut < duration) cuts.add(cut)
  }
  const edges = [0, ...[...cuts].sort((x, y) => x - y), duration]
  const out: ChunkRange[] = []
  for (let i = 0; i + 1 < edges.length; i++) out.push({ index: i, start: edges[i]!, end: edges[i + 1]! })
  return out
}

/**
 * A chain of ranges that covers [0, duration) exactly, each next one starting where the last
 * ended, in frame order; undefined when there is none. Ranges may overlap (an owner can hold a
 * whole chunk and pieces of it, cut by two coordinators): any chain will do, as a range's frames
 * are the same whoever rendered it. Linear after the sort.
 */
export function tileRanges<R extends { start: number; end: number }> (ranges: readonly R[], duration: number): R[] | undefined {
  const sorted = [...ranges].sort((a, b) => a.start - b.start || b.end - a.end)
  const via = new Map<number, R>()
  const reached = new Set<number>([0])
  // A range is only reachable from ranges that start before it: one pass in start order decides them all.
  for (const r of sorted) if (reached.has(r.start) && r.end > r.start && !reached.has(r.end)) { reached.add(r.end); via.set(r.end, r) }
  if (!reached.has(duration)) return undefined
  const out: R[] = []
  for (let at = duration; at > 0;) { const r = via.get(at)!; out.push(r); at = r.start }
  return out.reverse()
}
