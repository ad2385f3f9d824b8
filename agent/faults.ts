/**
 * Fault injection for the failure tests: a test starts an agent with
 * RENDERSWARM_FAULTS="segment-flip:1,segment-truncate:2" and that agent corrupts its next
 * segments on purpose (see docs/decisions.md #25). The release bundle has this compiled out:
 * scripts/build.mjs defines process.env.RENDERSWARM_FAULTS as undefined, so an installed
 * agent never reads the variable; only the TypeScript sources (tests, RENDERSWARM_TSX=1) do.
 *
 *   if (takeFault('segment-truncate')) await truncate(file, size / 2)
 *
 * Faults, each with a count of how many times it fires:
 * - segment-flip: one byte of the segment is changed in transit, after its hash was taken
 *   (the owner must see a hash mismatch).
 * - segment-truncate: the rendered segment is cut in half on disk after the worker checked it
 *   and before it is hashed and sent (the owner's own check must catch it).
 */
const KNOWN = ['segment-flip', 'segment-truncate'] as const
export type Fault = typeof KNOWN[number]

const left = parse(process.env.RENDERSWARM_FAULTS)

function parse (spec: string | undefined): Map<Fault, number> {
  const out = new Map<Fault, number>()
  if (spec === undefined || spec === '') return out
  for (const part of spec.split(',')) {
    const m = /^([a-z-]+):(\d{1,4})$/.exec(part.trim())
    if (m === null || !(KNOWN as readonly string[]).includes(m[1]!)) throw new Error(`RENDERSWARM_FAULTS: "${part}" is not one of ${KNOWN.map((k) => `${k}:N`).join(', ')}`)
    out.set(m[1] as Fault, Number(m[2]))
  }
  return out
}

/** True (and one fewer left) when the fault is armed. */
export function takeFault (fault: Fault): boolean {
  const n = left.get(fault) ?? 0
  if (n <= 0) return false
  left.set(fault, n - 1)
  return true
}
