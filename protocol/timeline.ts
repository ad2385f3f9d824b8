/**
 * The `farm.timeline/1` format: schema, validation and the errors a user sees.
 *
 *   const snap = parseSnapshot(json)          // network form: assets by sha256 only
 *   const doc = parseTimelineFile(json)       // editor form: assets by key of `assets`
 *
 * Two forms share one clip schema, differing only in how a clip names its asset:
 * the editor's file uses a key of its top-level `assets` map; the snapshot that
 * travels uses the asset's sha256. All times are integer frames at `fps`.
 * Every string that reaches ffmpeg is an enum, a number, a hex colour or a hash.
 */
import { z } from 'zod'

export const SCHEMA_ID = 'farm.timeline/1'

/** Hard limits: big enough for real edits, small enough that a job cannot exhaust a node. */
export const LIMITS = {
  maxDimension: 8192,
  maxFps: 240,
  maxDurationSeconds: 24 * 3600,
  maxTracks: 32,
  maxClips: 2000,
  maxEffectsPerClip: 8,
  maxTextLength: 1000,
  /** Entries of an editor file's `assets` map. */
  maxAssets: 4096
} as const

export class TimelineError extends Error {
  override readonly name = 'TimelineError'
  /** `field` is a dotted path into the timeline, e.g. `video[0].clips[2].start`. */
  constructor (readonly field: string, readonly problem: string, options?: { cause?: unknown }) {
    super(field === '' ? problem : `${field}: ${problem}`, options)
  }
}

const SHA256 = /^[0-9a-f]{64}$/
const KEY = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/
const looksLikePathOrUrl = (s: string): boolean =>
  /[/\\]/.test(s) || /^[a-z][a-z0-9+.-]*:/i.test(s) || s.startsWith('.') || s.startsWith('~')

const frames = (what: string) => z.number({ invalid_type_error: `${what} must be a number of frames` })
  .int(`${what} must be a whole number of frames`)
  .nonnegative(`${what} must not be negative`)
const positiveFrames = (what: string) => frames(what).positive(`${what} must be at least 1 frame`)

const hashRef = z.string().refine((s) => SHA256.test(s), (s) => ({
  message: looksLikePathOrUrl(s)
    ? `"${clip(s)}" looks like a path or URL; a snapshot names assets only by sha256`
    : `"${clip(s)}" is not a sha256 (64 lowercase hex digits)`
}))
const keyRef = z.string().refine((s) => KEY.test(s) && !looksLikePathOrUrl(s), (s) => ({
  message: looksLikePathOrUrl(s)
    ? `"${clip(s)}" looks like a path or URL; name media by a key of the top-level "assets" map`
    : `"${clip(s)}" is not a valid asset key (letters, digits, "_", "-", "."; at most 64)`
}))

function clip (s: string): string {
  const safe = s.replace(/[\u0000-\u001f\u007f]/g, '?')
  return safe.length > 40 ? `${safe.slice(0, 40)}…` : safe
}

/**
 * An array whose length is checked before any item is parsed: zod parses every item of an
 * over-long array before reporting its length, so 10^5 clips took seconds to refuse.
 */
export function boundedArray<T extends z.ZodTypeAny> (item: T, max: number) {
  return z.array(z.unknown()).max(max, `must have at most ${max} items`).pipe(z.array(item))
}

/** A record whose key count is checked before any value is parsed (see boundedArray). */
export function boundedRecord<K extends z.KeySchema, V extends z.ZodTypeAny> (key: K, value: V, max: number) {
  return z.record(z.string(), z.unknown()).refine((o) => Object.keys(o).length <= max, `must have at most ${max} entries`).pipe(z.record(key, value))
}

const hexColor = z.string().regex(/^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$/, 'colour must be #RRGGBB or #RRGGBBAA')
const clipId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'clip id must be 1–64 letters, digits, "_" or "-"')
const coord = z.number().int('must be a whole number of pixels').min(-16384).max(16384)
const unit = (lo: number, hi: number) => z.number().finite().min(lo).max(hi)

function makeSchemas<R extends z.ZodTypeAny> (ref: R) {
  const effect = z.discriminatedUnion('k', [
    z.object({
      k: z.literal('eq'),
      brightness: unit(-1, 1).optional(),
      contrast: unit(-2, 2).optional(),
      saturation: unit(0, 3).optional(),
      gamma: unit(0.1, 10).optional()
    }).strict(),
    z.object({ k: z.literal('hue'), deg: unit(-360, 360) }).strict(),
    z.object({ k: z.literal('gblur'), sigma: unit(0.01, 100) }).strict(),
    z.object({ k: z.literal('lut3d'), lut: ref }).strict()
  ], { errorMap: (issue, ctx) => issue.code === 'invalid_union_discriminator' ? { message: `unknown effect "${clip(String((ctx.data as { k?: unknown } | undefined)?.k))}"; known: eq, hue, gblur, lut3d` } : { message: ctx.defaultError } })

  const base = { id: clipId, start: frames('start'), length: positiveFrames('length') }
  const media = z.object({
    ...base,
    type: z.literal('media'),
    asset: ref,
    srcIn: frames('srcIn').default(0),
    speed: unit(0.1, 10).refine((s) => Math.abs(s * 1000 - Math.round(s * 1000)) < 1e-9, 'speed may have at most 3 decimals').optional(),
    opacity: unit(0, 1).optional(),
    volume: unit(0, 4).optional(),
    fit: z.enum(['contain', 'cover']).optional(),
    x: coord.optional(),
    y: coord.optional(),
    scale: unit(0.01, 10).optional(),
    fadeIn: frames('fadeIn').optional(),
    fadeOut: frames('fadeOut').optional(),
    fx: boundedArray(effect, LIMITS.maxEffectsPerClip).optional()
  }).strict()
  const text = z.object({
    ...base,
    type: z.literal('text'),
    text: z.string().min(1, 'text must not be empty').max(LIMITS.maxTextLength)
      .refine((s) => !s.includes('\u0000'), 'text must not contain NUL')
      .refine((s) => !/[\u0001-\u0009\u000b-\u001f\u007f]/.test(s), 'text must not contain control characters other than newline'),
    font: ref,
    size: z.number().int().min(4).max(1000),
    color: hexColor,
    x: coord,
    y: coord
  }).strict()
  const color = z.object({ ...base, type: z.literal('color'), color: hexColor, opacity: unit(0, 1).optional() }).strict()
  const videoClip = z.discriminatedUnion('type', [media, text, color], {
    errorMap: (issue, ctx) => issue.code === 'invalid_union_discriminator' ? { message: 'clip type must be "media", "text" or "color"' } : { message: ctx.defaultError }
  })
  const transition = z.object({
    a: clipId,
    b: clipId,
    kind: z.enum(['dissolve', 'wipeleft', 'slideleft', 'fadeblack'])
  }).strict()
  const videoTrack = z.object({ clips: boundedArray(videoClip, LIMITS.maxClips), transitions: boundedArray(transition, LIMITS.maxClips).optional() }).strict()
  const audioTrack = z.object({
    clips: boundedArray(media, LIMITS.maxClips),
    transitions: boundedArray(transition, LIMITS.maxClips).optional(),
    volume: unit(0, 4).optional()
  }).strict()
  const common = {
    schema: z.literal(SCHEMA_ID, { errorMap: () => ({ message: `unknown schema; expected "${SCHEMA_ID}"` }) }),
    name: z.string().max(200).optional(),
    fps: z.object({
      num: z.number().int('fps.num must be a whole number').positive('fps.num must be positive'),
      den: z.number().int('fps.den must be a whole number').positive('fps.den must be positive')
    }).strict(),
    width: z.number().int().positive().max(LIMITS.maxDimension, `must be at most ${LIMITS.maxDimension}`).refine((n) => n % 2 === 0, 'must be even'),
    height: z.number().int().positive().max(LIMITS.maxDimension, `must be at most ${LIMITS.maxDimension}`).refine((n) => n % 2 === 0, 'must be even'),
    sampleRate: z.number().int().min(8000).max(192000).default(48000),
    duration: positiveFrames('duration'),
    video: boundedArray(videoTrack, LIMITS.maxTracks),
    audio: boundedArray(audioTrack, LIMITS.maxTracks).default([])
  }
  return { media, text, color, videoClip, transition, videoTrack, audioTrack, effect, common }
}

const hashSchemas = makeSchemas(hashRef)
const keySchemas = makeSchemas(keyRef)

export const TimelineSnapshotSchema = z.object(hashSchemas.common).strict()
export const TimelineFileSchema = z.object({
  ...keySchemas.common,
  assets: boundedRecord(z.string(), z.object({
    path: z.string().min(1, 'path must not be empty').max(4096).refine((s) => !s.includes('\u0000'), 'path must not contain NUL'),
    /** Optional: the editor's own hash of the file; a mismatch is refused. */
    sha256: z.string().regex(SHA256, 'sha256 must be 64 lowercase hex digits').optional()
  }).strict(), LIMITS.maxAssets)
}).strict()

export type TimelineSnapshot = z.infer<typeof TimelineSnapshotSchema>
export type TimelineFile = z.infer<typeof TimelineFileSchema>
export type MediaClip = z.infer<typeof hashSchemas.media>
export type TextClip = z.infer<typeof hashSchemas.text>
export type ColorClip = z.infer<typeof hashSchemas.color>
export type VideoClip = z.infer<typeof hashSchemas.videoClip>
export type Transition = z.infer<typeof hashSchemas.transition>
export type VideoTrack = z.infer<typeof hashSchemas.videoTrack>
export type AudioTrack = z.infer<typeof hashSchemas.audioTrack>
export type Effect = z.infer<typeof hashSchemas.effect>
export type TransitionKind = Transition['kind']

/** Turns zod's first issue into a TimelineError naming the field. */
function fromZod (error: z.ZodError): TimelineError {
  const issue = error.issues[0]!
  // zod quotes the value it received (an enum's, say): clipped, so an error stays short.
  return new TimelineError(clipLong(fieldPath(issue.path)), clipLong(issue.message))
}

function clipLong (s: string): string {
  const safe = s.replace(/[\u0000-\u001f\u007f]/g, '?')
  return safe.length > 300 ? `${safe.slice(0, 300)}…` : safe
}

export function fieldPath (path: ReadonlyArray<string | number>): string {
  let out = ''
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : (out === '' ? p : `.${p}`)
  return out
}

/** Validates the network form. Throws TimelineError. */
export function parseSnapshot (input: unknown): TimelineSnapshot {
  const res = TimelineSnapshotSchema.safeParse(input)
  if (!res.success) throw fromZod(res.error)
  checkSemantics(res.data)
  return res.data
}

/** Validates the editor form (before assets are resolved). Throws TimelineError. */
export function parseTimelineFile (input: unknown): TimelineFile {
  if (typeof input === 'object' && input !== null && 'schema' in input && (input as { schema: unknown }).schema !== SCHEMA_ID) {
    throw new TimelineError('schema', `unknown schema "${clip(String((input as { schema: unknown }).schema))}"; expected "${SCHEMA_ID}"`)
  }
  const res = TimelineFileSchema.safeParse(input)
  if (!res.success) throw fromZod(res.error)
  for (const [key] of Object.entries(res.data.assets)) {
    if (!KEY.test(key) || looksLikePathOrUrl(key)) throw new TimelineError(`assets.${clip(key)}`, 'asset keys must be 1–64 letters, digits, "_", "-" or "." and not look like a path')
  }
  checkSemantics(res.data, (key, field) => {
    if (!(key in res.data.assets)) throw new TimelineError(field, `asset "${key}" is not in the top-level "assets" map`)
  })
  return res.data
}

interface ClipLike { id: string; start: number; length: number; type?: string; fadeIn?: number; fadeOut?: number }
interface TrackLike { clips: ClipLike[]; transitions?: Transition[] | undefined }
interface TimelineLike {
  fps: { num: number; den: number }; duration: number
  video: TrackLike[]; audio: TrackLike[]
}

/** Rules that span fields: ranges, overlaps, transitions, unique ids, asset references. */
function checkSemantics (t: TimelineLike, checkRef?: (ref: string, field: string) => void): void {
  const fps = t.fps.num / t.fps.den
  if (fps > LIMITS.maxFps) throw new TimelineError('fps', `${t.fps.num}/${t.fps.den} is over ${LIMITS.maxFps} fps`)
  if (fps < 1) throw new TimelineError('fps', `${t.fps.num}/${t.fps.den} is under 1 fps`)
  const maxFrames = Math.floor(LIMITS.maxDurationSeconds * fps)
  if (t.duration > maxFrames) throw new TimelineError('duration', `${t.duration} frames is over the ${LIMITS.maxDurationSeconds / 3600} h limit (${maxFrames} frames at this fps)`)
  const ids = new Set<string>()
  let total = 0
  const tracks: Array<[string, TrackLike]> = [
    ...t.video.map((tr, i): [string, TrackLike] => [`video[${i}]`, tr]),
    ...t.audio.map((tr, i): [string, TrackLike] => [`audio[${i}]`, tr])
  ]
  for (const [name, track] of tracks) {
    total += track.clips.length
    if (total > LIMITS.maxClips) throw new TimelineError(name, `more than ${LIMITS.maxClips} clips in the timeline`)
    track.clips.forEach((c, i) => {
      const f = `${name}.clips[${i}]`
      if (ids.has(c.id)) throw new TimelineError(`${f}.id`, `duplicate clip id "${c.id}"`)
      ids.add(c.id)
      if (c.start + c.length > t.duration) throw new TimelineError(`${f}`, `clip "${c.id}" ends at frame ${c.start + c.length}, past the timeline's end (${t.duration})`)
      if ((c.fadeIn ?? 0) + (c.fadeOut ?? 0) > c.length) throw new TimelineError(`${f}`, `fadeIn + fadeOut (${(c.fadeIn ?? 0) + (c.fadeOut ?? 0)}) is longer than the clip (${c.length})`)
      if (checkRef !== undefined) forEachRef(c, (ref, sub) => { checkRef(ref, `${f}.${sub}`) })
    })
    checkTrackLayout(name, track)
  }
}

function forEachRef (c: ClipLike, fn: (ref: string, field: string) => void): void {
  const any = c as ClipLike & { asset?: string; font?: string; fx?: Array<{ k: string; lut?: string }> }
  if (any.asset !== undefined) fn(any.asset, 'asset')
  if (any.font !== undefined) fn(any.font, 'font')
  any.fx?.forEach((e, i) => { if (e.lut !== undefined) fn(e.lut, `fx[${i}].lut`) })
}

/** Clips on one track overlap only where a transition joins two neighbours. */
function checkTrackLayout (name: string, track: TrackLike): void {
  const order = track.clips.map((c, i) => ({ c, i })).sort((x, y) => x.c.start - y.c.start || x.i - y.i)
  const pos = new Map(order.map((o, k) => [o.c.id, k]))
  const joined = new Set<string>()
  const hasIn = new Set<string>()
  const hasOut = new Set<string>()
  ;(track.transitions ?? []).forEach((tr, i) => {
    const f = `${name}.transitions[${i}]`
    const pa = pos.get(tr.a)
    const pb = pos.get(tr.b)
    if (pa === undefined) throw new TimelineError(`${f}.a`, `no clip "${tr.a}" on this track`)
    if (pb === undefined) throw new TimelineError(`${f}.b`, `no clip "${tr.b}" on this track`)
    if (pb !== pa + 1) throw new TimelineError(f, `clips "${tr.a}" and "${tr.b}" are not adjacent on the track`)
    const a = order[pa]!.c
    const b = order[pb]!.c
    if (a.type === 'text' || b.type === 'text') throw new TimelineError(f, 'transitions between text clips are not supported')
    const overlap = a.start + a.length - b.start
    if (overlap <= 0) throw new TimelineError(f, `clips "${a.id}" and "${b.id}" do not overlap; a transition needs the clips to overlap by its length`)
    if (b.start + b.length < a.start + a.length) throw new TimelineError(f, `clip "${b.id}" ends before "${a.id}"`)
    if (hasOut.has(a.id) || hasIn.has(b.id)) throw new TimelineError(f, 'a clip may have at most one transition in and one out')
    hasOut.add(a.id); hasIn.add(b.id)
    joined.add(`${pa}`)
  })
  for (let k = 0; k + 1 < order.length; k++) {
    const a = order[k]!.c
    const b = order[k + 1]!.c
    if (b.start < a.start + a.length && !joined.has(`${k}`)) {
      throw new TimelineError(`${name}.clips[${order[k + 1]!.i}]`, `clip "${b.id}" overlaps "${a.id}" without a transition`)
    }
    // A clip may overlap only its direct neighbour: the one after next must start after it ends.
    const c = order[k + 2]?.c
    if (c !== undefined && c.start < a.start + a.length) {
      throw new TimelineError(`${name}.clips[${order[k + 2]!.i}]`, `clip "${c.id}" overlaps "${a.id}" and "${b.id}" at once`)
    }
  }
}

/** Seconds of `frames` at fps, as a decimal string ffmpeg accepts (always a leading zero). */
export function framesToSeconds (n: number, fps: { num: number; den: number }): number {
  return (n * fps.den) / fps.num
}
