/**
 * Compiles a frame range [start, end) of a timeline into one ffmpeg invocation (pure).
 *
 *   const inv = compileChunk(ctx, { start: 120, end: 240 }, '/work/job/seg-001.mkv')
 *   toArgv(inv)  // exact argv; unit tests pin it
 *
 * Chunk-exactness: every clip is placed in absolute timeline time (pts = timeline
 * frame, time base 1/fps); fades, transitions and text are functions of that
 * absolute time; only at the very end is the chunk rebased to start at 0. Each
 * input is seeked half a source frame before the first source frame it needs,
 * and source frames are mapped to timeline frames with integer arithmetic, so
 * any chunk boundary yields the same frames as one continuous render.
 */
import type { ColorClip, MediaClip, TextClip, TimelineSnapshot, Transition, VideoClip, Effect } from '../../protocol/timeline.ts'
import type { MediaInfo, Rational } from '../media-info.ts'
import { gopFrames, type Preset } from './presets.ts'
import { escapeFilterValue, GLOBAL_OPTIONS, INPUT_GUARD, sec, type FfmpegInput, type FfmpegInvocation, type WorkFile } from './invocation.ts'
import path from 'node:path'

export interface CompileContext {
  timeline: TimelineSnapshot
  /** Probed facts about each media asset, by sha256. */
  media: Readonly<Record<string, MediaInfo>>
  /** Where the verified asset with this hash lives (the cache). */
  assetPath: (sha: string) => string
  /** The chunk's private work dir: the only place ffmpeg writes. */
  workDir: string
  preset: Preset
}

export interface FrameRange { start: number; end: number }

export class CompileError extends Error {
  override readonly name = 'CompileError'
}

export interface TransitionRole { kind: Transition['kind']; windowStart: number; windowLength: number }
export interface Roles { incoming?: TransitionRole; outgoing?: TransitionRole }

export function compileChunk (ctx: CompileContext, range: FrameRange, outFile: string): FfmpegInvocation {
  const t = ctx.timeline
  const { start: a, end: b } = range
  if (!Number.isInteger(a) || !Number.isInteger(b) || a < 0 || b > t.duration || b <= a) {
    throw new CompileError(`chunk range [${a}, ${b}) is not inside the timeline [0, ${t.duration})`)
  }
  const fps = t.fps
  const rate = `${fps.num}/${fps.den}`
  const tb = `${fps.den}/${fps.num}`
  const inputs: FfmpegInput[] = []
  const files: WorkFile[] = []
  const chains: string[] = []
  let label = 0
  const next = (): string => `v${label++}`

  chains.push(`color=c=black:s=${t.width}x${t.height}:r=${rate},trim=end_frame=${b - a},settb=${tb},setpts=PTS+${a},format=yuv420p[base]`)
  let cur = 'base'

  t.video.forEach((track, ti) => {
    const roles = transitionRoles(track.clips, track.transitions ?? [])
    const ordered = [...track.clips].sort((x, y) => x.start - y.start)
    for (const clip of ordered) {
      const role = roles.get(clip.id) ?? {}
      const visibleFrom = clip.start + (role.incoming?.kind === 'fadeblack' ? Math.floor(role.incoming.windowLength / 2) : 0)
      const v0 = Math.max(a, visibleFrom)
      const v1 = Math.min(b, clip.start + clip.length)
      if (v0 >= v1) continue
      if (clip.type === 'text') {
        const out = next()
        chains.push(`[${cur}]${drawText(ctx, clip, files)}[${out}]`)
        cur = out
        continue
      }
      let src: string
      let size: { w: number; h: number; x: number; y: number }
      if (clip.type === 'media') {
        const m = mediaBranch(ctx, clip, v0, v1, inputs, files, ti)
        src = m.chain
        size = m.size
      } else {
        src = colorBranch(t, clip, v0, v1)
        size = { w: t.width, h: t.height, x: 0, y: 0 }
      }
      const alpha = alphaFilters(t, clip, role)
      const branch = next()
      let chain = `${src},format=yuva420p`
      if (role.incoming?.kind === 'wipeleft') {
        // alphamerge replaces alpha, so opacity and fades come after the mask.
        const mask = next()
        const pre = next()
        chains.push(wipeMask(t, size, v0, v1, role.incoming, mask))
        chains.push(`${chain}[${pre}]`)
        chain = `[${pre}][${mask}]alphamerge`
      }
      if (alpha.length > 0) chain += ',' + alpha.join(',')
      chains.push(`${chain}[${branch}]`)
      const out = next()
      chains.push(`[${cur}][${branch}]overlay=x=${overlayX(t, size.x, role)}:y=${size.y}:eof_action=pass[${out}]`)
      cur = out
    }
  })

  chains.push(`[${cur}]setpts=PTS-STARTPTS,format=${ctx.preset.pixFmt}[vout]`)
  const gop = gopFrames(ctx.preset, fps)
  if (gop !== undefined && a % gop !== 0) throw new CompileError(`chunk start ${a} is not on a keyframe (every ${gop} frames) for preset ${ctx.preset.name}`)
  return {
    inputs,
    global: [...GLOBAL_OPTIONS],
    filterComplex: chains.join(';'),
    outputs: [{
      options: ['-map', '[vout]', '-frames:v', String(b - a), ...ctx.preset.videoArgs, ...(gop !== undefined ? ['-g', String(gop)] : []), '-an', '-f', ctx.preset.format],
      file: outFile
    }],
    files,
    frames: b - a
  }
}

/** Which transitions each clip takes part in, and as which side (video and audio tracks). */
export function transitionRoles (clips: VideoClip[] | MediaClip[], transitions: Transition[]): Map<string, Roles> {
  const byId = new Map<string, { start: number; length: number }>(clips.map((c) => [c.id, c]))
  const roles = new Map<string, Roles>()
  for (const tr of transitions) {
    const ca = byId.get(tr.a)
    const cb = byId.get(tr.b)
    if (ca === undefined || cb === undefined) continue
    const role: TransitionRole = { kind: tr.kind, windowStart: cb.start, windowLength: ca.start + ca.length - cb.start }
    roles.set(tr.a, { ...roles.get(tr.a), outgoing: role })
    roles.set(tr.b, { ...roles.get(tr.b), incoming: role })
  }
  return roles
}

function gcd (x: bigint, y: bigint): bigint {
  x = x < 0n ? -x : x; y = y < 0n ? -y : y
  while (y !== 0n) [x, y] = [y, x % y]
  return x
}

function floorDiv (n: bigint, d: bigint): bigint {
  const q = n / d
  return (n % d !== 0n && (n < 0n) !== (d < 0n)) ? q - 1n : q
}

/** speed as an exact fraction p/q (validation allows at most 3 decimals). */
function speedFraction (speed: number): { p: bigint; q: bigint } {
  const p = BigInt(Math.round(speed * 1000))
  const g = gcd(p, 1000n)
  return { p: p / g, q: 1000n / g }
}

/**
 * Source frame shown at timeline frame f of a clip: floor((srcIn + (f-start)·speed) · srcFps / fps).
 * Exported for tests and for validation of source ranges.
 */
export function sourceFrameAt (clip: Pick<MediaClip, 'start' | 'srcIn' | 'speed'>, f: number, fps: Rational, srcFps: Rational): number {
  const { p, q } = speedFraction(clip.speed ?? 1)
  const num = (BigInt(clip.srcIn) * q + BigInt(f - clip.start) * p) * BigInt(srcFps.num) * BigInt(fps.den)
  const den = q * BigInt(srcFps.den) * BigInt(fps.num)
  return Number(floorDiv(num, den))
}

function mediaBranch (ctx: CompileContext, clip: MediaClip, v0: number, v1: number, inputs: FfmpegInput[], files: WorkFile[], track: number): { chain: string; size: { w: number; h: number; x: number; y: number } } {
  const t = ctx.timeline
  const info = ctx.media[clip.asset]?.video
  if (info === undefined) throw new CompileError(`clip "${clip.id}" on video[${track}]: asset ${clip.asset.slice(0, 12)}… has no video stream`)
  const sfps = info.fps
  const k0 = sourceFrameAt(clip, v0, t.fps, sfps)
  const kLast = sourceFrameAt(clip, v1 - 1, t.fps, sfps)
  if (kLast >= info.frames) throw new CompileError(`clip "${clip.id}" needs source frame ${kLast} but its asset has ${info.frames} frames`)
  // Read two frames past the last needed one (when they exist) so frame-rate mapping can tell where it ends.
  const kEnd = Math.min(info.frames, kLast + 3)
  const frameSec = sfps.den / sfps.num
  const options = [...INPUT_GUARD]
  if (k0 > 0) options.push('-ss', sec((k0 - 0.5) * frameSec), '-t', sec((kEnd - k0) * frameSec))
  else options.push('-t', sec((kEnd - 0.5) * frameSec))
  const index = inputs.length
  inputs.push({ options, file: ctx.assetPath(clip.asset) })

  // Timeline frame at which source frame k is first shown: start + ceil((A·k − B) / C), reduced.
  const { p, q } = speedFraction(clip.speed ?? 1)
  let A = q * BigInt(sfps.den) * BigInt(t.fps.num)
  let B = q * BigInt(clip.srcIn) * BigInt(sfps.num) * BigInt(t.fps.den)
  let C = p * BigInt(sfps.num) * BigInt(t.fps.den)
  const g = gcd(gcd(A, B === 0n ? A : B), C)
  A /= g; B /= g; C /= g
  const k = `(${k0}+round((PTS-STARTPTS)*TB*${sfps.num}/${sfps.den}))`
  const identity = A === 1n && C === 1n
  const target = identity
    ? `(${clip.start - Number(B) + k0}+round((PTS-STARTPTS)*TB*${sfps.num}/${sfps.den}))`
    : `(${clip.start}+ceil((${A}*${k}-${B})/${C}))`
  const parts = [
    `[${index}:v:0]setpts='${target}*${t.fps.den}/${t.fps.num}/TB'`,
    `settb=${t.fps.den}/${t.fps.num}`
  ]
  if (!identity) parts.push(`fps=${t.fps.num}/${t.fps.den}`)
  parts.push(`trim=start_pts=${v0}:end_pts=${v1}`)

  const fit = clip.fit ?? 'contain'
  const f = fit === 'contain' ? Math.min(t.width / info.width, t.height / info.height) : Math.max(t.width / info.width, t.height / info.height)
  const scale = clip.scale ?? 1
  const w = even(info.width * f * scale)
  const h = even(info.height * f * scale)
  if (w !== info.width || h !== info.height) parts.push(`scale=${w}:${h}`)
  parts.push('format=yuv420p')
  for (const e of clip.fx ?? []) parts.push(effectFilter(ctx, e, files))
  const x = Math.round((t.width - w) / 2) + (clip.x ?? 0)
  const y = Math.round((t.height - h) / 2) + (clip.y ?? 0)
  return { chain: parts.join(','), size: { w, h, x, y } }
}

function even (n: number): number {
  return Math.max(2, 2 * Math.round(n / 2))
}

function effectFilter (ctx: CompileContext, e: Effect, files: WorkFile[]): string {
  switch (e.k) {
    case 'eq': {
      const opts: string[] = []
      if (e.brightness !== undefined) opts.push(`brightness=${num(e.brightness)}`)
      if (e.contrast !== undefined) opts.push(`contrast=${num(e.contrast)}`)
      if (e.saturation !== undefined) opts.push(`saturation=${num(e.saturation)}`)
      if (e.gamma !== undefined) opts.push(`gamma=${num(e.gamma)}`)
      return opts.length > 0 ? `eq=${opts.join(':')}` : 'null'
    }
    case 'hue': return `hue=h=${num(e.deg)}`
    case 'gblur': return `gblur=sigma=${num(e.sigma)}`
    case 'lut3d': {
      // lut3d picks its parser by file extension; the cache names files by hash alone.
      const file = path.join(ctx.workDir, `lut-${e.lut.slice(0, 16)}.cube`)
      if (!files.some((f) => f.path === file)) files.push({ path: file, copyOf: ctx.assetPath(e.lut) })
      return `lut3d=file=${escapeFilterValue(file)}`
    }
  }
}

/** A number as ffmpeg reads it: no exponent, leading zero. */
function num (n: number): string {
  return sec(n)
}

function colorBranch (t: TimelineSnapshot, clip: ColorClip, v0: number, v1: number): string {
  return `color=c=0x${clip.color.slice(1, 7)}:s=${t.width}x${t.height}:r=${t.fps.num}/${t.fps.den},trim=end_frame=${v1 - v0},settb=${t.fps.den}/${t.fps.num},setpts=PTS+${v0}`
}

/** Opacity, fades and dissolve/fadeblack transitions: all functions of absolute time. */
function alphaFilters (t: TimelineSnapshot, clip: MediaClip | ColorClip, role: Roles): string[] {
  const s = (frames: number): string => sec(frames * t.fps.den / t.fps.num)
  const out: string[] = []
  let opacity = clip.opacity ?? 1
  if (clip.type === 'color' && clip.color.length === 9) opacity *= parseInt(clip.color.slice(7, 9), 16) / 255
  if (opacity < 1) out.push(`lut=a='val*${num(opacity)}'`)
  if (clip.type === 'media') {
    if ((clip.fadeIn ?? 0) > 0) out.push(`fade=t=in:st=${s(clip.start)}:d=${s(clip.fadeIn!)}:alpha=1`)
    if ((clip.fadeOut ?? 0) > 0) out.push(`fade=t=out:st=${s(clip.start + clip.length - clip.fadeOut!)}:d=${s(clip.fadeOut!)}:alpha=1`)
  }
  const inc = role.incoming
  if (inc?.kind === 'dissolve') out.push(`fade=t=in:st=${s(inc.windowStart)}:d=${s(inc.windowLength)}:alpha=1`)
  if (inc?.kind === 'fadeblack') {
    const half = Math.floor(inc.windowLength / 2)
    out.push(`fade=t=in:st=${s(inc.windowStart + half)}:d=${s(inc.windowLength - half)}`)
  }
  const outg = role.outgoing
  if (outg?.kind === 'fadeblack') {
    const half = Math.floor(outg.windowLength / 2)
    if (half > 0) out.push(`fade=t=out:st=${s(outg.windowStart)}:d=${s(half)}`)
  }
  return out
}

/** Progress 0→1 through a transition window, from the frame's absolute time. */
function progressExpr (t: TimelineSnapshot, role: TransitionRole): string {
  return `clip((t*${t.fps.num}/${t.fps.den}-${role.windowStart})/${role.windowLength},0,1)`
}

function overlayX (t: TimelineSnapshot, x: number, role: Roles): string {
  if (role.incoming?.kind === 'slideleft') return `'${x}+${t.width}*(1-${progressExpr(t, role.incoming)})'`
  if (role.outgoing?.kind === 'slideleft') return `'${x}-${t.width}*${progressExpr(t, role.outgoing)}'`
  return String(x)
}

/** A white-on-black mask whose white edge sweeps right→left across the incoming clip. */
function wipeMask (t: TimelineSnapshot, size: { w: number; h: number }, v0: number, v1: number, role: TransitionRole, out: string): string {
  const src = (c: string): string => `color=c=${c}:s=${size.w}x${size.h}:r=${t.fps.num}/${t.fps.den},trim=end_frame=${v1 - v0},settb=${t.fps.den}/${t.fps.num},setpts=PTS+${v0}`
  const m1 = `${out}k`
  const m2 = `${out}w`
  return `${src('black')}[${m1}];${src('white')}[${m2}];[${m1}][${m2}]overlay=x='${size.w}*(1-${progressExpr(t, role)})':y=0:eof_action=pass,format=gray[${out}]`
}

function drawText (ctx: CompileContext, clip: TextClip, files: WorkFile[]): string {
  const t = ctx.timeline
  const textFile = path.join(ctx.workDir, `text-${clip.id}.txt`)
  files.push({ path: textFile, content: clip.text })
  const color = `0x${clip.color.slice(1)}`
  const from = sec((clip.start - 0.5) * t.fps.den / t.fps.num)
  const to = sec((clip.start + clip.length - 0.5) * t.fps.den / t.fps.num)
  return `drawtext=fontfile=${escapeFilterValue(ctx.assetPath(clip.font))}:textfile=${escapeFilterValue(textFile)}:expansion=none:fontsize=${clip.size}:fontcolor=${color}:x=${clip.x}:y=${clip.y}:enable='gte(t,${from})*lt(t,${to})'`
}

/** Filters a timeline needs beyond the basics, to check against a node's ffmpeg. */
export function requiredFilters (t: TimelineSnapshot): Set<string> {
  const need = new Set(['color', 'trim', 'settb', 'setpts', 'format', 'overlay', 'scale', 'anullsrc', 'atrim', 'concat', 'amix', 'apad', 'volume'])
  for (const track of t.video) {
    for (const c of track.clips) {
      if (c.type === 'text') need.add('drawtext')
      if (c.type === 'media') {
        for (const e of c.fx ?? []) need.add(e.k)
        if ((c.fadeIn ?? 0) > 0 || (c.fadeOut ?? 0) > 0) need.add('fade')
        if ((c.opacity ?? 1) < 1) need.add('lut')
      }
    }
    for (const tr of track.transitions ?? []) {
      need.add(tr.kind === 'wipeleft' ? 'alphamerge' : 'fade')
    }
  }
  return need
}
