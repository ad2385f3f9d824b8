/**
 * The simulated farms and queues (seeded, so a seed gives the same nodes and jobs every time).
 *
 * Nodes: benchmark fps (1280x720 reference, h264) lognormal, median 60, σ 0.5 (a 5th-to-95th
 * percentile spread of ~5×: old desktops to new workstations); 5 % of them are workstations in use
 * by their owner and give 0.35 of their benchmark (the scheduler does not know this).
 * Jobs: 1920x1080 at 30 fps, h264 (keyframe every 60 frames), length lognormal, median 20 min
 * (36,000 frames), σ 0.6, at least 1 min; all submitted at time 0.
 * Churn (the "failures" scenario): 10 % of the nodes crash at a uniform time within the first
 * 80 % of the expected makespan, 10 % join at a uniform time within its first half; the jobs carry a
 * deadline at 75 % of what the local farm alone needs, so the autoscaler rents spot machines (booting
 * 90 s), of which half are interrupted at a uniform time within the expected makespan after
 * they join (far above real spot rates, so that interruptions happen within the run).
 */
import { normal, rng, type Scenario, type SimJob, type SimNode } from './engine.ts'
import { jobFps } from '../../coordinator/estimate.ts'
import type { ScalerConfig } from '../../coordinator/autoscaler.ts'

export interface ScenarioSpec { name: string; nodes: number; jobs: number; seed: number; churn?: boolean; noise?: number; fpsSigma?: number; busyShare?: number }

export const OVERHEAD_S = 0.28
export const TICK_MS = 200
/**
 * One dispatch pass at a time: results within 10 ms of a pass's start wait for the next one
 * (engine.ts Scenario.dispatchMs). On 1,000 nodes × 100 jobs a Scheduler.assign pass over the
 * ~57,000 open chunks costs 0.68 ms of this machine's CPU in the simulator alone, and
 * bench/dispatch measured the runtime at 6.5 ms of CPU per chunk leased and taken; 10 ms is of
 * that order, and caps the passes at 100 per simulated second.
 */
export const DISPATCH_MS = 10

export function makeScenario (s: ScenarioSpec): Scenario {
  const r = rng(s.seed)
  const sigma = s.fpsSigma ?? 0.5
  const busy = s.busyShare ?? 0.05
  const nodes: SimNode[] = Array.from({ length: s.nodes }, (_, i) => ({
    id: `n${String(i).padStart(4, '0')}`,
    benchFps: 60 * Math.exp(sigma * normal(r)),
    speed: r() < busy ? 0.35 : 1,
    joinMs: 0
  }))
  const jobs: SimJob[] = Array.from({ length: s.jobs }, (_, i) => ({
    id: `j${String(i).padStart(3, '0')}`,
    frames: Math.max(1800, Math.round(36_000 * Math.exp(0.6 * normal(r)))),
    width: 1920,
    height: 1080,
    submitMs: 0,
    align: 60
  }))
  const sc: Scenario = { name: s.name, seed: s.seed, nodes, jobs, overheadS: OVERHEAD_S, noise: s.noise ?? 0.03, tickMs: TICK_MS, dispatchMs: DISPATCH_MS, limitMs: 0 }
  const fluid = expectedMs(sc)
  sc.limitMs = Math.max(3_600_000, fluid * 20)
  if (s.churn === true) {
    for (const n of nodes) {
      const x = r()
      if (x < 0.1) n.leaveMs = Math.floor(r() * 0.8 * fluid)
      else if (x < 0.2) n.joinMs = Math.floor(r() * 0.5 * fluid)
    }
    for (const j of jobs) j.deadlineMs = Math.floor(fluid * 0.75)
    // Interruptions must fall inside a run this short to be seen at all: far above real spot rates.
    sc.spotWindowMs = Math.floor(fluid)
  }
  return sc
}

/** Total work over total true capacity, ms (what the deadline and churn times are scaled to). */
function expectedMs (sc: Scenario): number {
  const W = sc.jobs.reduce((s, j) => s + j.frames / jobFps(1, j.width, j.height), 0)
  return (W / sc.nodes.reduce((s, n) => s + n.benchFps * n.speed, 0)) * 1000
}

/** The autoscaler's settings in the churn scenario: spot g5.xlarge at 60 fps, up to 30 % more nodes. */
export function burstConfig (localNodes: number): ScalerConfig {
  return {
    candidates: [{ provider: 'aws', region: 'us-east-1', instanceType: 'g5.xlarge', fps: { h264: 60 } }],
    minNodes: 0,
    maxNodes: Math.max(1, Math.round(localNodes * 0.3)),
    cooldownMs: 60_000,
    idleMs: 300_000,
    bootMs: 90_000,
    spot: { minSavings: 0.5, maxInterruptionRisk: 0.1, interruptionRisk: { 'g5.xlarge': 0.05 } },
    maxLaunch: Math.max(10, Math.round(localNodes * 0.1)),
    chunkOverheadSeconds: OVERHEAD_S
  }
}

/** The default grid: 10, 100, 1,000 nodes × 1, 10, 100 jobs, and the churn scenario. */
export function defaultGrid (seed: number, quick: boolean): ScenarioSpec[] {
  const out: ScenarioSpec[] = []
  for (const nodes of [10, 100, 1000]) {
    for (const jobs of quick ? [1, 100] : [1, 10, 100]) out.push({ name: `hetero ${nodes}×${jobs}`, nodes, jobs, seed: seed + nodes * 1000 + jobs })
  }
  out.push({ name: 'churn 100×10', nodes: 100, jobs: 10, seed: seed + 7, churn: true })
  return out
}
