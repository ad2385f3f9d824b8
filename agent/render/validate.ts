/**
 * Checks a rendered file with ffprobe: frame count, continuous timestamps, audio duration.
 *
 *   const report = await validateOutput(ffprobe, file, { frames: 600, fps: {num: 30, den: 1} })
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import type { Rational } from '../media-info.ts'

const run = promisify(execFile)

export class ValidationError extends Error {
  override readonly name = 'ValidationError'
}

export interface Expectation {
  frames: number
  fps: Rational
  /** When set, the audio stream must last this many seconds within one frame. */
  audioSeconds?: number | undefined
}

export interface ValidationReport { frames: number; videoSeconds: number; audioSeconds?: number | undefined }

export async function validateOutput (ffprobe: string, file: string, want: Expectation): Promise<ValidationReport> {
  const frameSec = want.fps.den / want.fps.num
  const v = await packets(ffprobe, file, 'v:0')
  if (v.pts.length !== want.frames) throw new ValidationError(`${file}: has ${v.pts.length} video frames, expected ${want.frames}`)
  const sorted = [...v.pts].sort((x, y) => x - y)
  const t0 = sorted[0] ?? 0
  for (let i = 0; i < sorted.length; i++) {
    const index = Math.round((sorted[i]! - t0) / frameSec)
    if (index !== i) throw new ValidationError(`${file}: timestamps jump at frame ${i} (${(sorted[i]! - t0).toFixed(4)} s; expected ${(i * frameSec).toFixed(4)} s)`)
  }
  const report: ValidationReport = { frames: v.pts.length, videoSeconds: v.pts.length * frameSec }
  if (want.audioSeconds !== undefined) {
    const a = await packets(ffprobe, file, 'a:0')
    if (a.pts.length === 0) throw new ValidationError(`${file}: has no audio`)
    const audioSeconds = a.end - Math.min(...a.pts)
    if (Math.abs(audioSeconds - want.audioSeconds) > frameSec + 1e-6) {
      throw new ValidationError(`${file}: audio lasts ${audioSeconds.toFixed(4)} s, expected ${want.audioSeconds.toFixed(4)} s (±1 frame)`)
    }
    report.audioSeconds = audioSeconds
  }
  return report
}

async function packets (ffprobe: string, file: string, stream: string): Promise<{ pts: number[]; end: number }> {
  let out: string
  try {
    out = (await run(ffprobe, ['-v', 'error', '-select_streams', stream, '-show_entries', 'packet=pts_time,duration_time', '-of', 'csv=p=0', file],
      { timeout: 120_000, maxBuffer: 256 * 1024 * 1024 })).stdout
  } catch (err) {
    throw new ValidationError(`${file}: ffprobe could not read it (${((err as { stderr?: string }).stderr ?? '').trim().split('\n')[0] ?? ''})`, { cause: err })
  }
  const pts: number[] = []
  let end = 0
  for (const line of out.split('\n')) {
    if (line.trim() === '') continue
    const [p, d] = line.split(',')
    const ts = Number(p)
    if (!Number.isFinite(ts)) throw new ValidationError(`${file}: a ${stream} packet has no timestamp`)
    pts.push(ts)
    end = Math.max(end, ts + (Number.isFinite(Number(d)) ? Number(d) : 0))
  }
  return { pts, end }
}
