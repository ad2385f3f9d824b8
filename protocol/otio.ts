/**
 * OpenTimelineIO import: an `.otio` file (already JSON-parsed) → a validated `farm.timeline/1` editor file.
 *
 *   const doc = importOtio(JSON.parse(readFileSync('cut.otio', 'utf8')), { width: 1920, height: 1080 })
 *
 * Supported: Timeline, its top-level Stack, Video/Audio Tracks of Clip, Gap and Transition,
 * ExternalReference media, LinearTimeWarp (→ speed), RationalTime, TimeRange; markers are ignored.
 * Anything else is refused by name; a clip with `enabled: false` is kept as a gap. Semantics chosen here:
 *  - a clip occupies source_range.duration on its track, whatever its LinearTimeWarp
 *    (it then consumes duration·speed of media, as the renderer does);
 *  - srcIn = source_range.start_time − available_range.start_time (or start_time alone);
 *  - a Transition sits between two clips: A is extended out_offset past the cut, B starts
 *    in_offset before it (its srcIn earlier by in_offset·speed), so they overlap by in+out;
 *  - positions are accumulated exactly and rounded once, so rate conversions do not drift.
 */
import { fileURLToPath } from 'node:url'
import { LIMITS, TimelineError, parseTimelineFile, SCHEMA_ID, type TimelineFile, type MediaClip, type Transition } from './timeline.ts'

export interface OtioImportOptions { width?: number; height?: number; sampleRate?: number; fps?: { num: number; den: number } }
type Obj = Record<string, unknown>
type Fps = { num: number; den: number }

const ITEMS = 'Clip, Gap, Transition, ExternalReference, LinearTimeWarp'
const MAX_ITEMS = LIMITS.maxClips * 4

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
const short = (s: string): string => { const t = s.replace(/[\u0000-\u001f\u007f]/g, '?'); return t.length > 60 ? `${t.slice(0, 60)}…` : t }
/** "Clip.2" → "Clip"; undefined when the object has no OTIO_SCHEMA. */
function schemaOf (v: unknown): string | undefined {
  return isObj(v) && typeof v.OTIO_SCHEMA === 'string' ? v.OTIO_SCHEMA.replace(/\.\d+$/, '') : undefined
}
function unsupported (field: string, v: unknown, supported: string): TimelineError {
  const s = isObj(v) && typeof v.OTIO_SCHEMA === 'string' ? `"${short(v.OTIO_SCHEMA)}"` : 'an object without OTIO_SCHEMA'
  return new TimelineError(field, `OTIO ${s} is not supported (supported: ${supported})`)
}
function want (v: unknown, field: string, ...schemas: string[]): Obj {
  if (!isObj(v) || !schemas.includes(schemaOf(v) ?? '')) throw unsupported(field, v, schemas.join(', '))
  return v
}

/** Seconds of a RationalTime; refuses anything that is not finite with a positive rate. */
function seconds (v: unknown, field: string): number {
  const rt = want(v, field, 'RationalTime')
  const { value, rate } = rt
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new TimelineError(`${field}.value`, 'must be a finite number')
  if (typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0) throw new TimelineError(`${field}.rate`, 'must be a finite number above 0')
  return value / rate
}
function rateOf (v: unknown, field: string): number { seconds(v, field); return (v as { rate: number }).rate }
function range (v: unknown, field: string): { start: number; dur: number; rate: number } {
  const tr = want(v, field, 'TimeRange')
  const dur = seconds(tr.duration, `${field}.duration`)
  if (dur < 0) throw new TimelineError(`${field}.duration`, 'must not be negative')
  return { start: seconds(tr.start_time, `${field}.start_time`), dur, rate: rateOf(tr.duration, `${field}.duration`) }
}

/** 29.97 → 30000/1001 (and the other NTSC rates), integers → n/1, anything else to 1/1000. */
export function fpsFromRate (rate: number): Fps {
  if (Math.abs(rate - Math.round(rate)) < 1e-6) return { num: Math.round(rate), den: 1 }
  const ntsc = Math.round(rate * 1001 / 1000)
  if (Math.abs(rate - ntsc * 1000 / 1001) < 0.005) return { num: ntsc * 1000, den: 1001 }
  const num = Math.round(rate * 1000)
  const g = gcd(num, 1000)
  return { num: num / g, den: 1000 / g }
}
const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b))

/** Basename made into an asset key: [A-Za-z0-9][A-Za-z0-9_.-]{0,63}. */
function keyFrom (path: string): string {
  const base = path.split(/[/\\]/).filter((s) => s !== '').pop() ?? ''
  const k = base.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64)
  return k === '' ? 'asset' : k
}
/** `base`, or `base` with -2, -3… before its extension (if `keepExt`) when already taken; at most 64 chars. */
function unique (base: string, taken: Set<string>, keepExt: boolean): string {
  const dot = base.lastIndexOf('.')
  const ext = keepExt && dot > 0 && base.length - dot <= 16 ? base.slice(dot) : ''
  const stem = base.slice(0, base.length - ext.length)
  let out = base
  for (let n = 2; taken.has(out); n++) out = `${stem.slice(0, 64 - ext.length - `-${n}`.length)}-${n}${ext}`
  taken.add(out)
  return out
}

/** A target_url as a local path: plain paths as they are, file:// URLs decoded; other schemes refused. */
function localPath (url: unknown, field: string, clipName: string): string {
  if (typeof url !== 'string' || url === '') throw new TimelineError(field, `clip "${short(clipName)}" has no target_url`)
  if (/^file:/i.test(url)) {
    try { return fileURLToPath(url) } catch (e) {
      throw new TimelineError(field, `clip "${short(clipName)}": "${short(url)}" is not a usable file:// URL`, { cause: e })
    }
  }
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)
  if (scheme !== null && !/^[A-Za-z]:[\\/]/.test(url)) {
    throw new TimelineError(field, `clip "${short(clipName)}" refers to "${short(url)}"; only local paths and file:// URLs are supported, not ${scheme[1]!.toLowerCase()}:`)
  }
  return url
}

/** Converts OTIO JSON to a validated editor-form timeline. Throws TimelineError. */
export function importOtio (json: unknown, opts: OtioImportOptions = {}): TimelineFile {
  if (!isObj(json)) throw new TimelineError('', `not an OpenTimelineIO timeline: expected a JSON object, got ${Array.isArray(json) ? 'an array' : json === null ? 'null' : typeof json}`)
  if (schemaOf(json) !== 'Timeline') {
    throw new TimelineError('', `not an OpenTimelineIO timeline: top-level OTIO_SCHEMA is ${typeof json.OTIO_SCHEMA === 'string' ? `"${short(json.OTIO_SCHEMA)}"` : 'missing'}, expected "Timeline.1"`)
  }
  const stack = want(json.tracks, 'tracks', 'Stack')
  if (!Array.isArray(stack.children)) throw new TimelineError('tracks.children', 'must be an array of tracks')
  if (stack.children.length > LIMITS.maxTracks) throw new TimelineError('tracks.children', `more than ${LIMITS.maxTracks} tracks`)
  if (Array.isArray(stack.effects) && stack.effects.length > 0) throw unsupported('tracks.effects[0]', stack.effects[0], 'no effects on the top-level stack')
  const tracks = stack.children.map((t, i) => {
    const f = `tracks[${i}]`
    const tr = schemaOf(t) === 'Stack' ? null : want(t, f, 'Track')
    if (tr === null) throw new TimelineError(f, `OTIO "${short(String((t as Obj).OTIO_SCHEMA))}" nested inside the top-level stack is not supported (supported: Track)`)
    if (tr.kind !== 'Video' && tr.kind !== 'Audio') throw new TimelineError(`${f}.kind`, `track kind "${short(String(tr.kind))}" is not supported (supported: Video, Audio)`)
    if (isObj(tr.source_range)) throw new TimelineError(`${f}.source_range`, 'trimmed tracks are not supported')
    if (Array.isArray(tr.effects) && tr.effects.length > 0) throw unsupported(`${f}.effects[0]`, tr.effects[0], 'no track effects')
    if (!Array.isArray(tr.children)) throw new TimelineError(`${f}.children`, 'must be an array')
    return { f, kind: tr.kind, children: tr.children as unknown[] }
  })
  const itemCount = tracks.reduce((n, t) => n + t.children.length, 0)
  if (itemCount > MAX_ITEMS) throw new TimelineError('tracks', `more than ${MAX_ITEMS} track items`)

  let rate: number | undefined
  if (opts.fps === undefined) {
    if (json.global_start_time != null) rate = rateOf(json.global_start_time, 'global_start_time')
    for (const t of tracks) {
      for (const [j, c] of t.children.entries()) {
        if (rate === undefined && schemaOf(c) === 'Clip' && isObj((c as Obj).source_range)) rate = range((c as Obj).source_range, `${t.f}.children[${j}].source_range`).rate
      }
    }
    if (rate === undefined) throw new TimelineError('fps', 'the OTIO timeline names no frame rate (no global_start_time or clip source_range); pass opts.fps')
  }
  const fps = opts.fps ?? fpsFromRate(rate!)
  const toFrames = (sec: number): number => sec * fps.num / fps.den

  const assets: Record<string, { path: string }> = {}
  const keyOfPath = new Map<string, string>()
  const keys = new Set<string>()
  const ids = new Set<string>()
  let clipCount = 0
  let duration = 0
  const video: TimelineFile['video'] = []
  const audio: TimelineFile['audio'] = []

  for (const t of tracks) {
    const clips: MediaClip[] = []
    const transitions: Transition[] = []
    let cursor = 0 // exact position in (fractional) timeline frames
    let prev: { kind: 'clip'; clip: MediaClip; srcEnd?: number } | { kind: 'gap' | 'transition' | 'start' } = { kind: 'start' }
    let pending: { f: string; inF: number; outF: number; a: MediaClip; srcEnd?: number } | undefined
    t.children.forEach((item, j) => {
      const f = `${t.f}.children[${j}]`
      const s = schemaOf(item)
      if (s === 'Gap' || (s === 'Clip' && (item as Obj).enabled === false)) { // a disabled clip holds its place like a gap
        if (pending !== undefined) throw new TimelineError(pending.f, 'a transition must sit between two clips, not next to a gap')
        const r = (item as Obj).source_range ?? (((item as Obj).media_references as Obj | undefined)?.DEFAULT_MEDIA as Obj | undefined)?.available_range
        cursor += toFrames(range(r, `${f}.source_range`).dur)
        prev = { kind: 'gap' }
      } else if (s === 'Transition') {
        const tr = item as Obj
        if (tr.transition_type !== 'SMPTE_Dissolve') throw new TimelineError(`${f}.transition_type`, `OTIO transition "${short(String(tr.transition_type))}" is not supported (supported: SMPTE_Dissolve)`)
        if (prev.kind !== 'clip') throw new TimelineError(f, 'a transition must sit between two clips')
        const inF = Math.round(toFrames(seconds(tr.in_offset, `${f}.in_offset`)))
        const outF = Math.round(toFrames(seconds(tr.out_offset, `${f}.out_offset`)))
        if (inF < 0 || outF < 0) throw new TimelineError(f, 'in_offset and out_offset must not be negative')
        pending = { f, inF, outF, a: prev.clip, ...(prev.srcEnd !== undefined ? { srcEnd: prev.srcEnd } : {}) }
        prev = { kind: 'transition' }
      } else if (s === 'Clip') {
        if (++clipCount > LIMITS.maxClips) throw new TimelineError(f, `more than ${LIMITS.maxClips} clips in the timeline`)
        const c = item as Obj
        const name = typeof c.name === 'string' ? c.name : ''
        const refs = isObj(c.media_references) ? c.media_references : undefined
        const activeKey = typeof c.active_media_reference_key === 'string' ? c.active_media_reference_key : 'DEFAULT_MEDIA'
        // The key is the file's text: clipped in the field path, so an error stays short.
        const refField = refs !== undefined ? `${f}.media_references.${short(activeKey)}` : `${f}.media_reference`
        const refVal = refs !== undefined && Object.hasOwn(refs, activeKey) ? refs[activeKey] : refs === undefined ? c.media_reference : undefined
        const ref = want(refVal, refField, 'ExternalReference')
        const avail = isObj(ref.available_range) ? range(ref.available_range, `${refField}.available_range`) : undefined
        const src = isObj(c.source_range) ? range(c.source_range, `${f}.source_range`) : avail
        if (src === undefined) throw new TimelineError(`${f}.source_range`, `clip "${short(name)}" has neither source_range nor available_range`)
        let speed = 1
        ;(Array.isArray(c.effects) ? c.effects as unknown[] : []).forEach((e, k) => {
          const fx = want(e, `${f}.effects[${k}]`, 'LinearTimeWarp')
          const ts = fx.time_scalar
          if (typeof ts !== 'number' || !Number.isFinite(ts) || ts <= 0) throw new TimelineError(`${f}.effects[${k}].time_scalar`, `must be a number above 0 (got ${short(String(ts))})`)
          speed *= ts
        })
        speed = Math.round(speed * 1000) / 1000
        if (speed < 0.1 || speed > 10) throw new TimelineError(`${f}.effects`, `speed ${speed} is outside 0.1–10`)
        const srcIn = Math.round(toFrames(src.start - (avail?.start ?? 0)))
        if (srcIn < 0) throw new TimelineError(`${f}.source_range.start_time`, `clip "${short(name)}" starts before its media's available_range`)
        const start = Math.round(cursor)
        cursor += toFrames(src.dur)
        const length = Math.round(cursor) - start
        if (length <= 0) throw new TimelineError(`${f}.source_range.duration`, `clip "${short(name)}" is shorter than one frame`)
        const path = localPath(ref.target_url, `${refField}.target_url`, name)
        let key = keyOfPath.get(path)
        if (key === undefined) {
          key = unique(keyFrom(path), keys, true)
          keyOfPath.set(path, key)
          assets[key] = { path }
        }
        const idWant = name.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64)
        const id = unique(/[A-Za-z0-9]/.test(idWant) ? idWant : `clip${clipCount}`, ids, false)
        const clip: MediaClip = { id, type: 'media', start, length, asset: key, srcIn, ...(speed !== 1 ? { speed } : {}) }
        if (pending !== undefined) {
          const { a, inF, outF } = pending
          if (inF > a.length || outF > length) throw new TimelineError(pending.f, `the transition (in_offset ${inF}, out_offset ${outF} frames) is longer than clip "${a.id}" or "${id}"`)
          a.length += outF
          if (pending.srcEnd !== undefined && a.srcIn + a.length * (a.speed ?? 1) > pending.srcEnd + 1e-6) {
            throw new TimelineError(pending.f, `clip "${a.id}" has too little media after its out point for the transition's out_offset (${outF} frames)`)
          }
          clip.start -= inF
          clip.length += inF
          clip.srcIn -= Math.round(inF * speed)
          if (clip.start < 0 || clip.srcIn < 0) throw new TimelineError(pending.f, `clip "${id}" has too little media before its in point for the transition's in_offset (${inF} frames)`)
          if (inF + outF > 0) transitions.push({ a: a.id, b: id, kind: 'dissolve' })
          duration = Math.max(duration, a.start + a.length)
          pending = undefined
        }
        clips.push(clip)
        duration = Math.max(duration, clip.start + clip.length)
        prev = { kind: 'clip', clip, ...(avail !== undefined ? { srcEnd: toFrames(avail.dur) } : {}) }
      } else if (s !== 'Marker') {
        throw unsupported(f, item, ITEMS)
      }
    })
    if (pending !== undefined) throw new TimelineError(pending.f, 'a transition must sit between two clips, not at the end of a track')
    duration = Math.max(duration, Math.round(cursor))
    const out = { clips, ...(transitions.length > 0 ? { transitions } : {}) }
    if (t.kind === 'Video') video.push(out)
    else audio.push(out)
  }
  if (duration <= 0) throw new TimelineError('duration', 'the OTIO timeline is empty (no clips or gaps with a duration)')

  return parseTimelineFile({
    schema: SCHEMA_ID,
    ...(typeof json.name === 'string' && json.name !== '' ? { name: json.name.slice(0, 200) } : {}),
    fps,
    width: opts.width ?? 1920,
    height: opts.height ?? 1080,
    sampleRate: opts.sampleRate ?? 48000,
    duration,
    video,
    audio,
    assets
  })
}
