/**
 * A one-line progress bar for terminals; plain periodic lines elsewhere.
 *
 *   const bar = new ProgressBar(process.stderr); bar.update(p); bar.done()
 */
import type { JobProgress } from '../../agent/render/local-render.ts'
import type { JobSummary, Progress } from '../sdk/farm.ts'

export type BarProgress = JobProgress & { nodes?: number }

export class ProgressBar {
  private lastPlain = -1
  private lastDraw = 0
  private latest = ''
  private printed = ''
  constructor (private readonly out: NodeJS.WriteStream, private readonly width = 30) {}

  update (p: BarProgress): void {
    const ratio = p.frames > 0 ? Math.min(1, p.framesDone / p.frames) : 0
    const text = formatProgress(p, this.width)
    this.latest = text
    if (this.out.isTTY === true) {
      const now = Date.now()
      if (now - this.lastDraw < 100 && ratio < 1) return
      this.lastDraw = now
      this.printed = text
      this.out.write(`\r${text}\u001b[K`)
    } else {
      const step = Math.floor(ratio * 10)
      if (step > this.lastPlain) {
        this.lastPlain = step
        this.printed = text
        this.out.write(text + '\n')
      }
    }
  }

  /** Shows the final state (throttling may have skipped it), then ends the line. */
  done (): void {
    if (this.out.isTTY === true) {
      this.out.write(`\r${this.latest}\u001b[K\n`)
    } else if (this.latest !== this.printed) {
      this.out.write(this.latest + '\n')
    }
    this.printed = this.latest
  }
}

/** A farm job's progress event as the bar shows it; fps from the workers, else frames over time since `startedMs`. */
export function farmBar (p: Progress, startedMs: number): BarProgress {
  const elapsed = (Date.now() - startedMs) / 1000
  const fps = p.fps > 0 ? p.fps : elapsed > 0 ? p.framesDone / elapsed : 0
  return {
    framesDone: p.framesDone, frames: p.frames, fps, etaSeconds: fps > 0 ? (p.frames - p.framesDone) / fps : undefined,
    chunksDone: p.chunks.filter((c) => c.status === 'done').length, chunks: p.chunks.length,
    nodes: new Set(p.chunks.filter((c) => c.status === 'leased').map((c) => c.node)).size
  }
}

/** The full bar of a finished farm job (the last progress event may have come before the end). */
export function farmBarDone (j: JobSummary): BarProgress {
  return { framesDone: j.frames, frames: j.frames, fps: 0, etaSeconds: 0, chunksDone: j.chunks.length, chunks: j.chunks.length }
}

export function formatProgress (p: BarProgress, width = 30): string {
  const ratio = p.frames > 0 ? Math.min(1, p.framesDone / p.frames) : 0
  const filled = Math.round(ratio * width)
  const bar = '#'.repeat(filled) + '.'.repeat(width - filled)
  const eta = p.etaSeconds === undefined ? '--:--' : clock(p.etaSeconds)
  return `[${bar}] ${String(Math.round(ratio * 100)).padStart(3)}%  ${p.framesDone}/${p.frames} frames  ${p.fps.toFixed(1)} fps  ETA ${eta}  chunks ${p.chunksDone}/${p.chunks}${p.nodes !== undefined ? `  nodes ${p.nodes}` : ''}`
}

export function clock (seconds: number): string {
  const s = Math.max(0, Math.round(seconds))
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const r = s % 60
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(r).padStart(2, '0')}` : `${m}:${String(r).padStart(2, '0')}`
}
