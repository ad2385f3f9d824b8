/**
 * The short fuzz run inside `npm test`: every decoder of test/fuzz/harness.ts gets FUZZ_RUNS
 * (default 2000; half for the signature checks) generated cases, none may crash, hang or give an unclear error, and the heap
 * after all of them (garbage collected) is within 64 MiB of where it started. The long run is
 * `npm run fuzz -- --minutes N` (bench/fuzz.ts).
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { checkCase, checkSeeds, FuzzCrash, TARGETS } from './harness.ts'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
const RUNS = Number(process.env.FUZZ_RUNS ?? 2000)
const MiB = 1024 * 1024

describe('fuzzing every decoder', () => {
  it('the seeds are valid messages (so mutations start deep)', () => { checkSeeds() })

  it('checkCase catches what it should: a crash, an unexpected error class, a hang', () => {
    const t = { name: 't', input: fc.constant(1), expected: [RangeError] }
    expect(() => { checkCase({ ...t, run: () => { throw new TypeError('x') } }, 1) }).toThrow(FuzzCrash)
    expect(() => { checkCase({ ...t, run: () => { throw new RangeError('') } }, 1) }).toThrow(/error message of 0 characters/)
    expect(() => { checkCase({ ...t, run: () => { const end = performance.now() + 60; while (performance.now() < end); } }, 1, 50) }).toThrow(/took \d+ ms/)
    expect(() => { checkCase({ ...t, run: () => { throw new RangeError('fine') } }, 1) }).not.toThrow()
  })

  const before = { heap: 0 }
  it('records the heap before', () => { gc(); before.heap = process.memoryUsage().heapUsed; expect(before.heap).toBeGreaterThan(0) })

  for (const t of TARGETS) {
    const runs = Math.ceil(RUNS / (t.cost ?? 1))
    it(`${t.name}: ${runs} cases, no crash`, () => {
      fc.assert(fc.property(t.input, (x) => { checkCase(t, x) }), { numRuns: runs, seed: Number(process.env.FUZZ_SEED ?? 42) })
    })
  }

  it('the heap stays bounded after every case', () => {
    gc()
    expect(process.memoryUsage().heapUsed - before.heap).toBeLessThan(64 * MiB)
  })
})
