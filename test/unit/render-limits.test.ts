/**
 * The pure parts of agent/render/limits.ts: limits from the environment, the wrapper script
 * text (every limit and the network namespace, quoted), and which limit a failed run names.
 */
import { describe, expect, it } from 'vitest'
import { explainFailure, jobDiskQuota, jobQuotaReason, lowDiskReason, renderLimits, RenderLimitError, wrapperScript, type RenderLimits } from '../../agent/render/limits.ts'

const MiB = 1024 * 1024
const machine = { memBytes: 8 * 1024 * MiB, cores: 4 }
const iso = { prlimit: '/usr/bin/prlimit', unshare: ['/usr/bin/unshare', '--net', '--'] }
const limits: RenderLimits = { memoryBytes: 512 * MiB, timeMs: 10_000, cpuSeconds: 20, maxFileBytes: 64 * MiB, minFreeBytes: MiB, noNetwork: true }

describe('renderLimits', () => {
  it('defaults: 3/4 of RAM (at least 2 GiB), 1 h, CPU = time × cores + 60 s, 100 GiB files, 1 GiB free, no network', () => {
    expect(renderLimits({}, machine)).toEqual({ memoryBytes: 6144 * MiB, timeMs: 3_600_000, cpuSeconds: 3600 * 4 + 60, maxFileBytes: 100 * 1024 * MiB, minFreeBytes: 1024 * MiB, noNetwork: true })
    expect(renderLimits({}, { memBytes: 1024 * MiB, cores: 1 }).memoryBytes).toBe(2048 * MiB)
  })
  it('reads each RENDERSWARM_RENDER_* override; 0 turns a limit off', () => {
    const l = renderLimits({ RENDERSWARM_RENDER_MEMORY_MB: '0', RENDERSWARM_RENDER_TIME_S: '5', RENDERSWARM_RENDER_MAX_FILE_MB: '1', RENDERSWARM_RENDER_MIN_FREE_MB: '0', RENDERSWARM_RENDER_NETWORK: 'allow' }, machine)
    expect(l).toEqual({ memoryBytes: 0, timeMs: 5000, cpuSeconds: 5 * 4 + 60, maxFileBytes: MiB, minFreeBytes: 0, noNetwork: false })
  })
  it('refuses a bad value, naming the variable', () => {
    expect(() => renderLimits({ RENDERSWARM_RENDER_MEMORY_MB: 'lots' }, machine)).toThrow(RenderLimitError)
    expect(() => renderLimits({ RENDERSWARM_RENDER_TIME_S: '-1' }, machine)).toThrow(/RENDERSWARM_RENDER_TIME_S: "-1" is not a number ≥ 0/)
    expect(() => renderLimits({ RENDERSWARM_RENDER_NETWORK: 'yes' }, machine)).toThrow(/must be "deny" \(default\) or "allow"/)
  })
})

describe('wrapperScript', () => {
  it('execs prlimit with every limit, then unshare --net, then ffmpeg with the arguments as given', () => {
    expect(wrapperScript('/opt/ff mpeg/ffmpeg', limits, iso)).toBe(
      "#!/bin/sh\nMALLOC_ARENA_MAX=2 exec '/usr/bin/prlimit' '--as=536870912' '--cpu=20:22' '--fsize=67108864' '--' '/usr/bin/unshare' '--net' '--' '/opt/ff mpeg/ffmpeg' \"$@\"\n")
  })
  it('quotes a path with a single quote so the shell cannot be escaped', () => {
    expect(wrapperScript("/tmp/it's/ffmpeg", limits, iso)).toContain("'/tmp/it'\\''s/ffmpeg'")
  })
  it('leaves out what is off or unavailable; nothing to enforce → no wrapper', () => {
    expect(wrapperScript('/usr/bin/ffmpeg', { ...limits, memoryBytes: 0, noNetwork: false }, iso)).not.toMatch(/--as=|unshare/)
    expect(wrapperScript('/usr/bin/ffmpeg', limits, { prlimit: undefined, unshare: iso.unshare })).toMatch(/^#!\/bin\/sh\nMALLOC_ARENA_MAX=2 exec '\/usr\/bin\/unshare'/)
    expect(wrapperScript('/usr/bin/ffmpeg', limits, { prlimit: undefined, unshare: undefined })).toBeUndefined()
  })
})

describe('explainFailure', () => {
  const end = { stderr: '', signal: undefined, exitCode: 1, wallMs: 100, cores: 4 }
  it('names the memory limit for allocation failures and crashes under it', () => {
    expect(explainFailure({ ...end, stderr: '[ffv1 @ 0x1] Failed to allocate packet of size 2147483551' }, limits, iso)).toMatch(/memory limit of 512 MiB/)
    expect(explainFailure({ ...end, stderr: 'error while loading shared libraries: libc.so.6: failed to map segment from shared object' }, limits, iso)).toMatch(/memory limit/)
    expect(explainFailure({ ...end, signal: 'SIGSEGV' }, limits, iso)).toMatch(/memory limit/)
    expect(explainFailure({ ...end, signal: 'SIGSEGV' }, { ...limits, memoryBytes: 0 }, iso)).toBeUndefined()
  })
  it('names the CPU limit only when the run lasted long enough to use it', () => {
    expect(explainFailure({ ...end, signal: 'SIGXCPU' }, limits, iso)).toMatch(/CPU time limit of 20 s/)
    expect(explainFailure({ ...end, exitCode: 255, wallMs: 5000 }, limits, iso)).toMatch(/CPU time limit/)
    expect(explainFailure({ ...end, exitCode: 255, wallMs: 4000 }, limits, iso)).toBeUndefined() // 4 s × 4 cores < 20 s
    expect(explainFailure({ ...end, signal: 'SIGKILL', wallMs: 100 }, limits, iso)).toBeUndefined()
  })
  it('names the file limit on SIGXFSZ; other failures and machines without prlimit get nothing', () => {
    expect(explainFailure({ ...end, signal: 'SIGXFSZ' }, limits, iso)).toMatch(/over the 64 MiB per-chunk disk limit/)
    expect(explainFailure({ ...end, stderr: 'Invalid argument' }, limits, iso)).toBeUndefined()
    expect(explainFailure({ ...end, signal: 'SIGXCPU' }, limits, { prlimit: undefined, unshare: undefined })).toBeUndefined()
  })
})

describe('disk floor and per-job quota', () => {
  it('the floor names the free space and the floor, for a dir that does not exist yet too; 0 turns it off', () => {
    expect(lowDiskReason('/proc/no/such/dir', { minFreeBytes: 2 ** 50 })).toMatch(/^the disk holding \/proc\/no\/such\/dir has \d+ MiB free, under the 1073741824 MiB this node keeps free$/)
    expect(lowDiskReason('/', { minFreeBytes: 0 })).toBeUndefined()
    expect(lowDiskReason('/', { minFreeBytes: 1 })).toBeUndefined()
  })
  it('a job at or over its quota is named with both figures; under it, or with no quota, nothing', () => {
    expect(jobQuotaReason('job-1', 12 * MiB, 10 * MiB)).toBe('job job-1 holds 12.0 MiB on this worker\'s disk, at or over its per-job quota of 10.0 MiB')
    expect(jobQuotaReason('job-1', 20_000, 10_240)).toMatch(/holds 20 KiB .* quota of 10 KiB$/)
    expect(jobQuotaReason('job-1', 9 * MiB, 10 * MiB)).toBeUndefined()
    expect(jobQuotaReason('job-1', 9 * MiB, 0)).toBeUndefined()
  })
  it('the quota comes from RENDERSWARM_RENDER_JOB_DISK_MB (default 200 GiB), a bad value named', () => {
    expect(jobDiskQuota({})).toBe(200 * 1024 * MiB)
    expect(jobDiskQuota({ RENDERSWARM_RENDER_JOB_DISK_MB: '0.5' })).toBe(MiB / 2)
    expect(() => jobDiskQuota({ RENDERSWARM_RENDER_JOB_DISK_MB: 'lots' })).toThrow(/RENDERSWARM_RENDER_JOB_DISK_MB: "lots" is not a number ≥ 0/)
  })
})
