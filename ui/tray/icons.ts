/**
 * The tray's icons, drawn: one per health state (ui/tray/model.ts), at 16 px and 32 px
 * (`@2x`, for HiDPI), plus the 512 px app icon electron-builder packages. Deterministic: the
 * unit test checks that the committed files under ui/tray/icons/ are what this draws.
 *
 *   for (const [name, png] of allIcons()) …       // name → PNG bytes
 *   node bin/run-ts.js ui/tray/make-icons.ts      # rewrites ui/tray/icons/*.png
 *
 * Shapes differ as well as colours, for colour-blind users: idle a filled dot, rendering a
 * dot with a white ring, degraded a dot with a white bar, offline a hollow grey ring.
 */
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Health } from './model.ts'
import { encodePng } from './png.ts'

type Rgb = [number, number, number]
const COLOURS: Record<Health, Rgb> = { idle: [46, 160, 67], rendering: [31, 111, 235], degraded: [210, 153, 34], offline: [139, 148, 158] }

/** Coverage (0–1) of a pixel by a shape, sampled 4×4 inside the pixel for smooth edges. */
function cover (inside: (x: number, y: number) => boolean, px: number, py: number): number {
  let n = 0
  for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) if (inside(px + (i + 0.5) / 4, py + (j + 0.5) / 4)) n++
  return n / 16
}

export function drawIcon (state: Health, size: number): Uint8Array {
  const out = new Uint8Array(size * size * 4)
  const c = size / 2
  const r = size * 0.44
  const d = (x: number, y: number): number => Math.hypot(x - c, y - c)
  const disc = (x: number, y: number): boolean => d(x, y) <= r
  const mark: (x: number, y: number) => boolean =
    state === 'rendering' ? (x, y) => Math.abs(d(x, y) - r * 0.5) <= r * 0.14
      : state === 'degraded' ? (x, y) => Math.abs(y - c) <= r * 0.16 && Math.abs(x - c) <= r * 0.55
        : () => false
  const shape = state === 'offline' ? (x: number, y: number) => disc(x, y) && d(x, y) >= r * 0.62 : disc
  const [cr, cg, cb] = COLOURS[state]
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const a = cover(shape, x, y)
      const w = cover(mark, x, y) // white over the colour
      const i = (y * size + x) * 4
      out[i] = Math.round(cr + (255 - cr) * w)
      out[i + 1] = Math.round(cg + (255 - cg) * w)
      out[i + 2] = Math.round(cb + (255 - cb) * w)
      out[i + 3] = Math.round(255 * a)
    }
  }
  return out
}

export const ICON_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'icons')
export const HEALTHS: Health[] = ['idle', 'rendering', 'degraded', 'offline']

/** Every icon file: name → PNG bytes. */
export function allIcons (): Map<string, Buffer> {
  const files = new Map<string, Buffer>()
  for (const h of HEALTHS) {
    files.set(`tray-${h}.png`, encodePng(16, 16, drawIcon(h, 16)))
    files.set(`tray-${h}@2x.png`, encodePng(32, 32, drawIcon(h, 32)))
  }
  files.set('app.png', encodePng(512, 512, drawIcon('rendering', 512)))
  return files
}
