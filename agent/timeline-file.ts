/**
 * Loads an editor's timeline file (farm.timeline/1 JSON or .otio) into a snapshot.
 *
 *   const loaded = await loadTimelineFile('/proj/edit.json', { ffprobe })
 *   loaded.snapshot      // assets by sha256 only: what travels
 *   loaded.sources[sha]  // the local file behind each hash (stays on this machine)
 *
 * Nothing is written: hashing and probing read the editor's files where they are, and
 * every check (schema, asset readability, hashes, source ranges) runs before a caller
 * copies anything into its cache or starts a render.
 */
import { readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import { parseSnapshot, parseTimelineFile, TimelineError, type TimelineFile, type TimelineSnapshot } from '../protocol/timeline.ts'
import { sha256File } from './assets.ts'
import { probeMedia, type MediaInfo } from './media-info.ts'
import { sourceFrameAt } from './render/compile.ts'

export interface LoadedTimeline {
  snapshot: TimelineSnapshot
  media: Record<string, MediaInfo>
  sources: Record<string, string>
}

export interface LoadOptions {
  ffprobe: string
  /** For .otio files, which carry no frame size. */
  otio?: { width?: number; height?: number; sampleRate?: number }
}

const MAX_TIMELINE_BYTES = 16 * 1024 * 1024

export async function loadTimelineFile (file: string, opts: LoadOptions): Promise<LoadedTimeline> {
  let text: string
  try {
    const st = await stat(file)
    if (!st.isFile()) throw new Error('not a file')
    if (st.size > MAX_TIMELINE_BYTES) throw new Error(`larger than ${MAX_TIMELINE_BYTES / 1024 / 1024} MiB`)
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new TimelineError('', `cannot read timeline ${file}: ${(err as Error).message}`, { cause: err })
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new TimelineError('', `${file} is not valid JSON: ${(err as Error).message}`, { cause: err })
  }
  const doc = file.toLowerCase().endsWith('.otio')
    ? (await import('../protocol/otio.ts')).importOtio(json, opts.otio)
    : parseTimelineFile(json)
  return resolveAssets(doc, path.dirname(path.resolve(file)), opts.ffprobe)
}

/** Hashes and probes every asset the timeline uses, then checks clips against their media. */
export async function resolveAssets (doc: TimelineFile, baseDir: string, ffprobe: string): Promise<LoadedTimeline> {
  const used = usedKeys(doc)
  const shaOf = new Map<string, string>()
  const sources: Record<string, string> = {}
  const media: Record<string, MediaInfo> = {}
  for (const [key, kind] of used) {
    const entry = doc.assets[key]!
    const field = `assets.${key}.path`
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(entry.path)) throw new TimelineError(field, `"${entry.path.slice(0, 60)}" is a URL; give a file path relative to the timeline file`)
    const abs = path.resolve(baseDir, entry.path)
    let sha: string
    try {
      const st = await stat(abs)
      if (!st.isFile()) throw new Error('not a regular file')
      sha = await sha256File(abs)
    } catch (err) {
      throw new TimelineError(field, `cannot read asset "${entry.path}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
    }
    if (entry.sha256 !== undefined && entry.sha256 !== sha) {
      throw new TimelineError(`assets.${key}.sha256`, `asset hash mismatch: "${entry.path}" has sha256 ${sha.slice(0, 16)}…, the timeline says ${entry.sha256.slice(0, 16)}…`)
    }
    if (kind === 'lut' && !abs.toLowerCase().endsWith('.cube')) throw new TimelineError(field, 'a LUT must be a .cube file')
    if (kind === 'media' && media[sha] === undefined) {
      try {
        media[sha] = await probeMedia(ffprobe, abs)
      } catch (err) {
        throw new TimelineError(field, (err as Error).message, { cause: err })
      }
    }
    shaOf.set(key, sha)
    sources[sha] = abs
  }
  const snapshot = parseSnapshot(toSnapshot(doc, shaOf))
  checkAgainstMedia(snapshot, media)
  return { snapshot, media, sources }
}

function usedKeys (doc: TimelineFile): Map<string, 'media' | 'font' | 'lut'> {
  const out = new Map<string, 'media' | 'font' | 'lut'>()
  for (const track of doc.video) {
    for (const c of track.clips) {
      if (c.type === 'media') {
        out.set(c.asset, 'media')
        for (const e of c.fx ?? []) if (e.k === 'lut3d') out.set(e.lut, 'lut')
      }
      if (c.type === 'text') out.set(c.font, 'font')
    }
  }
  for (const track of doc.audio) for (const c of track.clips) out.set(c.asset, 'media')
  return out
}

function toSnapshot (doc: TimelineFile, shaOf: Map<string, string>): unknown {
  const { assets: _assets, ...rest } = doc
  const sha = (k: string): string => shaOf.get(k)!
  return {
    ...rest,
    video: doc.video.map((tr) => ({
      ...tr,
      clips: tr.clips.map((c) => {
        if (c.type === 'media') return { ...c, asset: sha(c.asset), ...(c.fx !== undefined ? { fx: c.fx.map((e) => e.k === 'lut3d' ? { ...e, lut: sha(e.lut) } : e) } : {}) }
        if (c.type === 'text') return { ...c, font: sha(c.font) }
        return c
      })
    })),
    audio: doc.audio.map((tr) => ({ ...tr, clips: tr.clips.map((c) => ({ ...c, asset: sha(c.asset) })) }))
  }
}

/** Every clip's source range must exist in its media, and the right kind of stream must be there. */
export function checkAgainstMedia (t: TimelineSnapshot, media: Record<string, MediaInfo>): void {
  t.video.forEach((track, ti) => track.clips.forEach((c, ci) => {
    if (c.type !== 'media') return
    const v = media[c.asset]?.video
    const field = `video[${ti}].clips[${ci}]`
    if (v === undefined) throw new TimelineError(`${field}.asset`, `clip "${c.id}": the asset has no video stream`)
    const last = sourceFrameAt(c, c.start + c.length - 1, t.fps, v.fps)
    if (last >= v.frames) throw new TimelineError(field, `clip "${c.id}" needs source frame ${last} but its media has ${v.frames} frames (srcIn ${c.srcIn}, length ${c.length})`)
  }))
  t.audio.forEach((track, ti) => track.clips.forEach((c, ci) => {
    const a = media[c.asset]?.audio
    if (a === undefined) throw new TimelineError(`audio[${ti}].clips[${ci}].asset`, `clip "${c.id}": the asset has no audio stream`)
  }))
}
