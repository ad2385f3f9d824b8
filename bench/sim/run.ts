/**
 * npm run bench:sim [-- --quick] [--seed N] [--only NAME] [--proposal]
 *
 * Runs each scenario (scenarios.ts) three times on the same nodes, jobs and seed: the farm (real
 * Scheduler, planner, chunk sizing, failure detector, autoscaler, leasing at once as the runtime
 * does), equal split, and fixed-size chunks pulled FIFO; prints makespan over the lower bound
 * (engine.ts lowerBound) for each, and the BENCH line (last line of stdout) for bench/all.ts.
 * --proposal adds, on every scenario, the farm without the Scheduler's tail placement and tail
 * backups (the plain column: the fastest-free rule the runtime used before decision 38) and, on
 * 1,000 × 100, the runtime as it was before decision 41 (a chunk per node at least, none cut at
 * lease time), for comparison.
 */
import os from 'node:os'
import { coverageProblem, lowerBound, simulate, type Scenario, type SimResult } from './engine.ts'
import { equalSplit, farmPolicy, fixedChunks } from './policies.ts'
import { burstConfig, defaultGrid, DISPATCH_MS, makeScenario, OVERHEAD_S, TICK_MS, type ScenarioSpec } from './scenarios.ts'

/** Fixed-chunk baseline: 120 frames = 4 s at 30 fps, two keyframe intervals (the nearest aligned size to the 100 frames often used for video on Flamenco/Deadline). */
export const FIXED_FRAMES = 120

/** User + system CPU time since `from`, ms: on a shared machine this varies far less than wall time. */
const cpuMs = (from: NodeJS.CpuUsage): number => { const d = process.cpuUsage(from); return (d.user + d.system) / 1000 }

export interface Row { spec: ScenarioSpec; sc: Scenario; lb: number; farm: SimResult; plain?: SimResult | undefined; equal: SimResult; fixed: SimResult; farmWallMs: number; wallMs: number; cpuMs: number }

export function runScenario (spec: ScenarioSpec, withPlain = false): Row {
  const sc = makeScenario(spec)
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  const farm = simulate(sc, farmPolicy(spec.churn === true ? { autoscale: burstConfig(spec.nodes) } : {}))
  const farmWallMs = performance.now() - t0
  // The others get the same machines, cloud ones included (as the farm's autoscaler rented them).
  const same: Scenario = { ...sc, nodes: farm.nodes.map((n) => ({ ...n })) }
  const plain = withPlain ? simulate(same, farmPolicy({ tailHold: false, tailBackups: false })) : undefined
  const equal = simulate(same, equalSplit())
  const fixed = simulate(same, fixedChunks(FIXED_FRAMES))
  for (const r of [farm, plain, equal, fixed]) {
    if (r === undefined) continue
    const bad = coverageProblem(sc.jobs, r.covered)
    if (bad !== undefined) throw new Error(`${sc.name} / ${r.policy}: ${bad}`)
  }
  return { spec, sc, lb: lowerBound(farm.nodes, sc.jobs, sc.overheadS), farm, plain, equal, fixed, farmWallMs, wallMs: performance.now() - t0, cpuMs: cpuMs(c0) }
}

function main (): void {
  const args = process.argv.slice(2)
  const quick = args.includes('--quick')
  const withProposal = args.includes('--proposal')
  const seedAt = args.indexOf('--seed')
  const seed = seedAt >= 0 ? Number(args[seedAt + 1]) : 20261129
  const onlyAt = args.indexOf('--only')
  const only = onlyAt >= 0 ? args[onlyAt + 1] : undefined
  if (!Number.isInteger(seed)) throw new Error('--seed takes a whole number')
  const grid = defaultGrid(seed, quick).filter((s) => only === undefined || s.name.includes(only))
  const started = performance.now()
  const cpu0 = process.cpuUsage()
  const load0 = os.loadavg()[0]!
  const rows: Row[] = []
  const f = (x: number): string => x.toFixed(3)
  const head = ['scenario', 'nodes', 'jobs', 'chunks', 'farm s', 'LB s', 'farm/LB', 'plain/LB', 'equal/LB', `fixed${FIXED_FRAMES}/LB`, 'lost', 'joined', 'farm wall s', 'wall s', 'cpu s']
  const w = [16, 6, 5, 7, 9, 9, 8, 9, 9, 12, 5, 7, 12, 7, 6]
  const line = (cells: string[]): string => cells.map((c, i) => i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!)).join('  ')
  console.log(`seed ${seed}${quick ? ' (--quick)' : ''}`)
  console.log(line(head))
  console.log(line(w.map((n) => '-'.repeat(n))))
  for (const spec of grid) {
    const r = runScenario(spec, withProposal)
    rows.push(r)
    console.log(line([spec.name, String(r.farm.nodes.length), String(spec.jobs), String(r.farm.chunksRendered), (r.farm.makespanMs / 1000).toFixed(1), (r.lb / 1000).toFixed(1),
      f(r.farm.makespanMs / r.lb), r.plain !== undefined ? f(r.plain.makespanMs / r.lb) : '–', f(r.equal.makespanMs / r.lb), f(r.fixed.makespanMs / r.lb), String(r.farm.nodesLost), String(r.farm.nodes.filter((n) => n.joinMs > 0).length),
      (r.farmWallMs / 1000).toFixed(2), (r.wallMs / 1000).toFixed(2), (r.cpuMs / 1000).toFixed(1)]))
  }
  // --proposal: on the 1,000 × 100 farm, the runtime before decision 41 (policies.ts FarmOptions floor 'nodes', split off).
  let proposal: { name: string; ratio: number; beatsBoth: boolean } | undefined
  if (withProposal) {
    const big = rows.find((r) => r.spec.nodes === 1000 && r.spec.jobs === 100)
    if (big !== undefined) {
      const t = performance.now()
      const p = simulate({ ...big.sc, nodes: big.farm.nodes.map((n) => ({ ...n })) }, farmPolicy({ floor: 'nodes', split: false }))
      const bad = coverageProblem(big.sc.jobs, p.covered)
      if (bad !== undefined) throw new Error(`proposal: ${bad}`)
      proposal = { name: `${big.spec.name} ${p.policy} (before decision 41)`, ratio: p.makespanMs / big.lb, beatsBoth: p.makespanMs < big.equal.makespanMs && p.makespanMs < big.fixed.makespanMs }
      console.log(`\nbefore decision 41 on ${big.spec.name}: ${p.policy}: ${p.chunksRendered} chunks, makespan ${(p.makespanMs / 1000).toFixed(1)} s = ${f(proposal.ratio)} × LB (farm ${f(big.farm.makespanMs / big.lb)}, plain ${big.plain !== undefined ? f(big.plain.makespanMs / big.lb) : '–'}, equal ${f(big.equal.makespanMs / big.lb)}, fixed ${f(big.fixed.makespanMs / big.lb)}); ${((performance.now() - t) / 1000).toFixed(1)} s wall`)
    }
  }
  const total = performance.now() - started
  const totalCpu = cpuMs(cpu0)
  const load = `load average ${load0.toFixed(1)} at start, ${os.loadavg()[0]!.toFixed(1)} at end`
  console.log(`\ntotal wall time ${(total / 1000).toFixed(1)} s, CPU time ${(totalCpu / 1000).toFixed(1)} s (${load})`)
  console.log(`
method: discrete-event simulation on a simulated clock (bench/sim/engine.ts); seed ${seed}, every draw from one seeded PRNG per run.
  farm = runtime defaults (Scheduler tailHold + tailBackups + split at lease time with 4 s pieces at least, pace from progress; chunk floor = the job's share of the nodes); plain (--proposal only) = the same without tailHold and tailBackups. Both: the real coordinator/scheduler.ts (assign, renew, expire, nodeLost, speculate, complete, release), coordinator/planner.ts planChunks
    with coordinator/estimate.ts chunkCount (target 30 s chunks, keyframe-aligned), coordinator/membership.ts MembershipTable (heartbeat 1 s,
    dead after 3.25 s), coordinator/autoscaler.ts decide every 10 s (churn scenario), lease 15 s. Dispatch as agent/coordinator.ts since 4e61342:
    a result or a new job is followed at once by an assign pass (requestTick → leaseFree); one pass at a time, so results within ${DISPATCH_MS} ms
    of a pass's start share the next pass ${DISPATCH_MS} ms later; the ${TICK_MS} ms tick still renews, expires, runs the detector, backups (speculate)
    and the autoscaler, and leases to nodes that joined or were refused (those wait for it in the runtime too).
  equal = each job's frames in one keyframe-aligned piece per node up front; fixed${FIXED_FRAMES} = ${FIXED_FRAMES}-frame pieces (4 s at 30 fps, 2 keyframe
    intervals) in FIFO order, pulled by idle workers (Flamenco/Deadline style). A baseline worker asks for its next piece as soon as it is
    free or joins (same ${DISPATCH_MS} ms pass rule); on failure a lost node's pieces go to a shared queue that idle nodes pull from.
  chunk time = (frames / true job fps + ${OVERHEAD_S} s overhead) × (1 + |N(0, 0.03)|); true fps = benchmark fps × (1280·720)/(1920·1080) × speed
    (speed 0.35 for 5 % of nodes: workstations in use, unknown to the scheduler).
  LB = max(T_cap, T_unit): T_cap = least T with Σ_i v_i·max(0, up_i(T) − ${OVERHEAD_S} s) ≥ W (v_i true reference fps, up_i(T) time node i is up
    within [0, T], W = Σ frames × pixels/(1280·720)); = W/Σv + ${OVERHEAD_S} s when no node joins or leaves. T_unit = one keyframe interval
    on the fastest node + ${OVERHEAD_S} s. Churn: the bound counts each node only while it is up (cloud nodes from when they joined), and
    ignores work lost with a crashed node, so it is optimistic there.
  lost = nodes crashed or interrupted (churn: 10 % of local nodes crash, half the spot machines are interrupted within the expected makespan); joined = nodes that joined after the start (late workstations, and cloud nodes the farm's
    autoscaler rented; plain and the baselines get those same machines at the same times, without running the autoscaler).
  makespan = last chunk result taken (the owner's join is the same for every policy and left out). Every run is checked: each job's frames
    taken exactly once. wall = this machine's time to simulate (farm alone, and all three, or four with --proposal); cpu = this process's CPU time for
    the row (the machine is shared: wall time grows with its load, CPU time much less).
machine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.cpus().length} cores, node ${process.version}; ${new Date().toISOString()}`)
  const big = rows.find((r) => r.spec.nodes === 1000 && r.spec.jobs === 100) ?? rows.find((r) => r.spec.nodes === 1000)
  const bench: Array<{ figure: string; value: string; target: string; pass: boolean | null; method: string }> = []
  for (const r of rows) {
    const ratio = r.farm.makespanMs / r.lb
    const isBig = r === big
    const meets = (x: SimResult): boolean => x.makespanMs / r.lb <= 1.1 && x.makespanMs < r.equal.makespanMs && x.makespanMs < r.fixed.makespanMs
    bench.push({
      figure: `${r.spec.name}: farm makespan / LB (${r.plain !== undefined ? 'plain, ' : ''}equal split, fixed-${FIXED_FRAMES})`,
      value: `${f(ratio)} (${r.plain !== undefined ? `${f(r.plain.makespanMs / r.lb)}, ` : ''}${f(r.equal.makespanMs / r.lb)}, ${f(r.fixed.makespanMs / r.lb)})`,
      target: isBig ? '≤ 1.10 × LB and < both baselines' : '',
      pass: isBig ? meets(r.farm) : null,
      method: `bench/sim seed ${seed}; ${r.farm.nodes.length} nodes, ${r.spec.jobs} jobs; farm = runtime defaults; LB = max(W/capacity over up time + overhead, one GOP on the fastest node)`
    })
  }
  if (proposal !== undefined) {
    bench.push({
      figure: `${proposal.name}: makespan / LB`, value: f(proposal.ratio), target: '≤ 1.10 × LB and < both baselines', pass: proposal.ratio <= 1.1 && proposal.beatsBoth,
      method: `bench/sim --proposal seed ${seed}: the runtime before decision 41 (a chunk per node at least, none cut at lease time)`
    })
  }
  if (big !== undefined) bench.push({ figure: `${big.spec.name}: simulation wall time (farm, ${big.plain !== undefined ? 'plain, ' : ''}2 baselines)`, value: `${(big.wallMs / 1000).toFixed(1)} s (CPU ${(big.cpuMs / 1000).toFixed(1)} s)`, target: '< 60 s', pass: big.wallMs < 60_000, method: `performance.now() around the ${big.plain !== undefined ? 'four' : 'three'} runs, this machine, ${load}` })
  bench.push({ figure: `whole ${quick ? '--quick' : 'default'} run wall time`, value: `${(total / 1000).toFixed(1)} s (CPU ${(totalCpu / 1000).toFixed(1)} s)`, target: '< 60 s', pass: total < 60_000, method: `all ${rows.length} scenarios${proposal !== undefined ? ' and --proposal' : ''}, performance.now(); ${load}` })
  console.log(`BENCH ${JSON.stringify({ script: 'bench/sim/run.ts', rows: bench })}`)
}

// Imported by the tests (runScenario) without running.
if (process.env.VITEST === undefined) main()
