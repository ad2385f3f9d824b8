/**
 * What the renderer must know about a media asset, read with ffprobe.
 *
 *   const info = await probeMedia(tools.ffprobe, file)   // { video?: {width, height, fps, frames}, audio?: {...} }
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface Rational { num: number; den: number }
export interface MediaInfo {
  video?: { width: number; height: number; fps: Rational; frames: number } | undefined
  audio?: { sampleRate: number; channels: number; seconds: number } | undefined
}

export class MediaProbeError extends Error {
  override readonly name = 'MediaProbeError'
}

interface ProbeStream {
  codec_type?: string; width?: number; height?: number; r_frame_rate?: string; avg_frame_rate?: string
  nb_frames?: string; duration?: string; sample_rate?: string; channels?: number
  disposition?: { attached_pic?: number }
}

export async function probeMedia (ffprobe: string, file: string): Promise<MediaInfo> {
  let out: string
  try {
    out = (await run(ffprobe, ['-v', 'error', '-show_entries',
      'stream=codec_type,width,height,r_frame_rate,avg_frame_rate,nb_frames,duration,sample_rate,channels:stream_disposition=attached_pic:format=duration',
      '-of', 'json', file], { timeout: 30_000, maxBuffer: 4 * 1024 * 1024 })).stdout
  } catch (err) {
    throw new MediaProbeError(`probing ${file}: not a readable media file (${firstLine((err as { stderr?: string }).stderr ?? (err as Error).message)})`, { cause: err })
  }
  const json = JSON.parse(out) as { streams?: ProbeStream[]; format?: { duration?: string } }
  const streams = json.streams ?? []
  const v = streams.find((s) => s.codec_type === 'video' && s.disposition?.attached_pic !== 1)
  const a = streams.find((s) => s.codec_type === 'audio')
  const info: MediaInfo = {}
  if (v !== undefined) {
    const fps = parseRational(v.r_frame_rate) ?? parseRational(v.avg_frame_rate)
    if (fps === undefined || v.width === undefined || v.height === undefined) throw new MediaProbeError(`probing ${file}: video stream has no frame rate or size`)
    const seconds = Number(v.duration ?? json.format?.duration ?? NaN)
    const frames = v.nb_frames !== undefined && /^\d+$/.test(v.nb_frames)
      ? Number(v.nb_frames)
      : Math.floor(seconds * fps.num / fps.den + 1e-6)
    if (!Number.isFinite(frames) || frames <= 0) throw new MediaProbeError(`probing ${file}: cannot tell how many frames the video has`)
    info.video = { width: v.width, height: v.height, fps, frames }
  }
  if (a !== undefined) {
    info.audio = { sampleRate: Number(a.sample_rate ?? 48000), channels: a.channels ?? 2, seconds: Number(a.duration ?? json.format?.duration ?? 0) }
  }
  return info
}

export function parseRational (s: string | undefined): Rational | undefined {
  const m = /^(\d+)\/(\d+)$/.exec(s ?? '')
  if (m === null) return undefined
  const num = Number(m[1]); const den = Number(m[2])
  if (num === 0 || den === 0) return undefined
  return { num, den }
}

function firstLine (s: string): string {
  return s.trim().split('\n')[0]?.slice(0, 200) ?? ''
}
