/**
 * What this machine is: CPU, memory, GPUs, OS. An absent GPU or nvidia-smi is normal.
 *
 *   const hw = await probeHardware()          // { cpu: {model, cores}, memBytes, gpus: [...], os, host: {id, cores} }
 *   const load = await sampleLoad()           // { cpuPct, memUsedBytes, memTotalBytes, gpuPct? }
 *
 * `host` says which agents share a machine's cores (the estimate splits a host's cores among the
 * agents rendering on it at once; coordinator/estimate.ts hostShares): `id` is a hash of the
 * machine id (/etc/machine-id, else the host name), this boot (/proc/sys/kernel/random/boot_id)
 * and the CPUs this process may run on (Cpus_allowed_list), so two agents pinned to different
 * cores of one machine count as two hosts; `cores` is how many CPUs it may use.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import si from 'systeminformation'

export interface GpuInfo { model: string; vramBytes: number; driver?: string | undefined; utilPct?: number | undefined }
export interface HardwareInfo {
  cpu: { model: string; cores: number }
  memBytes: number
  gpus: GpuInfo[]
  os: string
  host?: HostInfo | undefined
}
export interface HostInfo { id: string; cores: number }
export interface LoadSample { cpuPct: number; memUsedBytes: number; memTotalBytes: number; gpuPct?: number | undefined }

type NvidiaSmi = (cb: (err: unknown, data?: unknown) => void) => void

export interface ProbeOptions {
  /** nvidia-smi has no timeout of its own; a wedged driver must not hang the agent. */
  gpuTimeoutMs?: number
  /** Replaceable for tests; default the node-nvidia-smi package. */
  nvidiaSmi?: NvidiaSmi
}

export async function probeHardware (opts: ProbeOptions = {}): Promise<HardwareInfo> {
  const [cpu, mem, os, gpus] = await Promise.all([si.cpu(), si.mem(), si.osInfo(), probeGpus(opts)])
  return {
    cpu: { model: `${cpu.manufacturer} ${cpu.brand}`.trim().slice(0, 128) || 'unknown', cores: Math.max(1, cpu.cores || 1) },
    memBytes: mem.total,
    gpus,
    os: `${os.distro || os.platform} ${os.release}`.trim().slice(0, 64),
    host: hostInfo()
  }
}

const readText = (file: string): string => { try { return readFileSync(file, 'utf8').trim() } catch { return '' } }

/** This machine, boot and CPU set as 16 hex digits, and the CPUs this process may use (see the module comment). */
export function hostInfo (read: (file: string) => string = readText): HostInfo {
  const machine = read('/etc/machine-id') || read('/var/lib/dbus/machine-id') || os.hostname()
  const boot = read('/proc/sys/kernel/random/boot_id')
  const cpus = /^Cpus_allowed_list:\s*(\S+)$/m.exec(read('/proc/self/status'))?.[1] ?? ''
  const id = createHash('sha256').update(`${machine}\n${boot}\n${cpus}`).digest('hex').slice(0, 16)
  return { id, cores: Math.max(1, Math.min(1024, os.availableParallelism())) }
}

export async function sampleLoad (opts: ProbeOptions = {}): Promise<LoadSample> {
  const [load, mem, gpus] = await Promise.all([si.currentLoad(), si.mem(), probeGpus({ gpuTimeoutMs: 2000, ...opts })])
  const util = gpus.map((g) => g.utilPct).filter((u): u is number => u !== undefined)
  return {
    cpuPct: clampPct(load.currentLoad),
    memUsedBytes: mem.active,
    memTotalBytes: mem.total,
    gpuPct: util.length > 0 ? clampPct(util.reduce((x, y) => x + y, 0) / util.length) : undefined
  }
}

/** NVIDIA GPUs via nvidia-smi; [] when there is none, it is missing, it fails or it times out. */
export async function probeGpus (opts: ProbeOptions = {}): Promise<GpuInfo[]> {
  const smi = opts.nvidiaSmi ?? (createRequire(import.meta.url)('node-nvidia-smi') as NvidiaSmi)
  const data = await new Promise<unknown>((resolve) => {
    const timer = setTimeout(() => { resolve(undefined) }, opts.gpuTimeoutMs ?? 5000)
    try {
      smi((err, out) => { clearTimeout(timer); resolve(err === null || err === undefined ? out : undefined) })
    } catch {
      clearTimeout(timer)
      resolve(undefined)
    }
  })
  return parseNvidiaSmi(data)
}

/** Parses node-nvidia-smi's object (nvidia-smi -q -x through xml2js), defensively. */
export function parseNvidiaSmi (data: unknown): GpuInfo[] {
  const log = (data as { nvidia_smi_log?: Record<string, unknown> } | undefined)?.nvidia_smi_log
  if (log === undefined || log === null || typeof log !== 'object') return []
  const raw = log.gpu
  const list = Array.isArray(raw) ? raw : raw !== undefined ? [raw] : []
  const driver = typeof log.driver_version === 'string' ? log.driver_version.slice(0, 64) : undefined
  return list.slice(0, 16).flatMap((g: unknown) => {
    if (g === null || typeof g !== 'object') return []
    const gpu = g as { product_name?: unknown; fb_memory_usage?: { total?: unknown }; utilization?: { gpu_util?: unknown } }
    const model = typeof gpu.product_name === 'string' ? gpu.product_name.slice(0, 128) : 'NVIDIA GPU'
    return [{ model, vramBytes: mib(gpu.fb_memory_usage?.total), driver, utilPct: pct(gpu.utilization?.gpu_util) }]
  })
}

function mib (v: unknown): number {
  const m = typeof v === 'string' ? /^(\d+(?:\.\d+)?)\s*MiB$/.exec(v.trim()) : null
  return m !== null ? Math.round(Number(m[1]) * 1024 * 1024) : 0
}

function pct (v: unknown): number | undefined {
  const m = typeof v === 'string' ? /^(\d+(?:\.\d+)?)\s*%$/.exec(v.trim()) : null
  return m !== null ? clampPct(Number(m[1])) : undefined
}

function clampPct (n: number): number {
  return Number.isFinite(n) ? Math.min(100, Math.max(0, Math.round(n * 10) / 10)) : 0
}
