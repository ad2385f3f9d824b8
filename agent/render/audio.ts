/**
 * The job's audio, rendered once for the whole timeline (joined AAC chunks click and drift).
 *
 *   const inv = compileAudio(ctx, '/work/job/audio.m4a')
 */
import type { MediaClip, TimelineSnapshot } from '../../protocol/timeline.ts'
import { CompileError, transitionRoles, type CompileContext, type Roles } from './compile.ts'
import { GLOBAL_OPTIONS, INPUT_GUARD, sec, type FfmpegInput, type FfmpegInvocation } from './invocation.ts'

/** Sample index of timeline frame f: round(f · den · rate / num). */
export function sampleAt (t: Pick<TimelineSnapshot, 'fps' | 'sampleRate'>, f: number): number {
  const n = BigInt(f) * BigInt(t.fps.den) * BigInt(t.sampleRate)
  const d = BigInt(t.fps.num)
  return Number((2n * n + d) / (2n * d))
}

export function compileAudio (ctx: CompileContext, outFile: string): FfmpegInvocation {
  const t = ctx.timeline
  const sr = t.sampleRate
  const total = sampleAt(t, t.duration)
  const inputs: FfmpegInput[] = []
  const chains: string[] = []
  const mixed: string[] = []
  const fmt = `aformat=sample_fmts=fltp:sample_rates=${sr}:channel_layouts=stereo`
  t.audio.forEach((track, ti) => {
    const roles = transitionRoles(track.clips, track.transitions ?? [])
    for (const clip of track.clips) {
      const label = `a${mixed.length}`
      chains.push(clipChain(ctx, clip, track.volume ?? 1, roles.get(clip.id) ?? {}, inputs, ti, fmt, total, label))
      mixed.push(label)
    }
  })
  if (mixed.length === 0) {
    chains.push(`anullsrc=r=${sr}:cl=stereo,atrim=end_sample=${total},${fmt}[aout]`)
  } else if (mixed.length === 1) {
    chains.push(`[${mixed[0]}]anull[aout]`)
  } else {
    // Every input lasts the whole timeline, so amix's 1/N scale is constant; undo it.
    chains.push(`${mixed.map((l) => `[${l}]`).join('')}amix=inputs=${mixed.length}:duration=first:dropout_transition=0,volume=${mixed.length}[aout]`)
  }
  return {
    inputs,
    global: [...GLOBAL_OPTIONS],
    filterComplex: chains.join(';'),
    outputs: [{ options: ['-map', '[aout]', ...ctx.preset.audioArgs, '-vn', '-f', ctx.preset.audioFormat], file: outFile }],
    files: []
  }
}

function clipChain (ctx: CompileContext, clip: MediaClip, trackVolume: number, roles: Roles, inputs: FfmpegInput[], track: number, fmt: string, total: number, label: string): string {
  const t = ctx.timeline
  const info = ctx.media[clip.asset]?.audio
  if (info === undefined) throw new CompileError(`clip "${clip.id}" on audio[${track}]: asset ${clip.asset.slice(0, 12)}… has no audio stream`)
  const speed = clip.speed ?? 1
  const srcSec = clip.srcIn * t.fps.den / t.fps.num
  const lenSec = clip.length * t.fps.den / t.fps.num
  const startSample = sampleAt(t, clip.start)
  const len = sampleAt(t, clip.start + clip.length) - startSample
  const options = [...INPUT_GUARD]
  if (srcSec > 0) options.push('-ss', sec(srcSec))
  options.push('-t', sec(lenSec * speed + 0.5))
  const index = inputs.length
  inputs.push({ options, file: ctx.assetPath(clip.asset) })
  const parts = [`[${index}:a:0]aresample=${t.sampleRate}`, fmt, 'asetpts=PTS-STARTPTS']
  for (const f of atempoChain(speed)) parts.push(`atempo=${sec(f)}`)
  parts.push('apad', `atrim=end_sample=${len}`)
  const volume = (clip.volume ?? 1) * trackVolume
  if (volume !== 1) parts.push(`volume=${sec(volume)}`)
  // Any transition on an audio track is a crossfade over its overlap.
  const fadeIn = Math.max(clip.fadeIn ?? 0, roles.incoming?.windowLength ?? 0)
  const fadeOut = Math.max(clip.fadeOut ?? 0, roles.outgoing?.windowLength ?? 0)
  if (fadeIn > 0) parts.push(`afade=t=in:ss=0:ns=${sampleAt(t, fadeIn)}`)
  if (fadeOut > 0) parts.push(`afade=t=out:ss=${len - sampleAt(t, fadeOut)}:ns=${sampleAt(t, fadeOut)}`)
  let chain = parts.join(',')
  if (startSample > 0) {
    chain = `anullsrc=r=${t.sampleRate}:cl=stereo,atrim=end_sample=${startSample},${fmt}[${label}s];${chain}[${label}c];[${label}s][${label}c]concat=n=2:v=0:a=1`
  }
  return `${chain},apad,atrim=end_sample=${total}[${label}]`
}

/** atempo takes 0.5–2.0 per instance; chain instances for other speeds. */
export function atempoChain (speed: number): number[] {
  const out: number[] = []
  let s = speed
  while (s > 2) { out.push(2); s /= 2 }
  while (s < 0.5) { out.push(0.5); s /= 0.5 }
  if (Math.abs(s - 1) > 1e-9) out.push(s)
  return out
}
