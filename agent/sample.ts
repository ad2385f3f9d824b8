/**
 * Writes the sample project: a 20 s 1280x720 timeline whose media ffmpeg generates itself.
 *
 *   const file = await writeSample('/tmp/demo', tools)   // → /tmp/demo/sample.timeline.json
 *
 * Three generated clips (a dissolve between the first two), a text title, two audio tracks.
 */
import { execFile } from 'node:child_process'
import { copyFile, mkdir, stat, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import path from 'node:path'
import { promisify } from 'node:util'
import type { TimelineFile } from '../protocol/timeline.ts'
import type { FfmpegTools } from './ffmpeg.ts'

const run = promisify(execFile)

export function bundledFontPath (): string {
  const require = createRequire(import.meta.url)
  return path.join(path.dirname(require.resolve('dejavu-fonts-ttf/package.json')), 'ttf', 'DejaVuSans-Bold.ttf')
}

interface GeneratedMedia { name: string; args: string[] }

const W = 1280
const H = 720
const FPS = 30

const MEDIA: GeneratedMedia[] = [
  { name: 'bars.mp4', args: ['-f', 'lavfi', '-i', `testsrc2=s=${W}x${H}:r=${FPS}:d=9`] },
  { name: 'life.mp4', args: ['-f', 'lavfi', '-i', `life=s=320x180:r=${FPS}:mold=10:ratio=0.1:death_color=#C83232:life_color=#00FF00,scale=${W}:${H}:flags=neighbor`, '-t', '9'] },
  { name: 'rgb.mp4', args: ['-f', 'lavfi', '-i', `testsrc=s=${W}x${H}:r=${FPS}:d=8`] }
]
const VIDEO_OUT = ['-c:v', 'libx264', '-preset', 'veryfast', '-crf', '20', '-pix_fmt', 'yuv420p', '-g', '60']

export async function writeSample (dir: string, tools: Pick<FfmpegTools, 'ffmpeg'>): Promise<string> {
  const mediaDir = path.join(dir, 'media')
  await mkdir(mediaDir, { recursive: true })
  const gen = async (name: string, args: string[]): Promise<void> => {
    const out = path.join(mediaDir, name)
    if (await exists(out)) return
    const tmp = path.join(mediaDir, `.${name}.tmp${path.extname(name)}`)
    await run(tools.ffmpeg, ['-nostdin', '-hide_banner', '-loglevel', 'error', '-y', ...args, tmp], { timeout: 300_000 })
    const { rename } = await import('node:fs/promises')
    await rename(tmp, out)
  }
  for (const m of MEDIA) await gen(m.name, [...m.args, ...VIDEO_OUT])
  await gen('tone.m4a', ['-f', 'lavfi', '-i', 'sine=f=220:r=48000:d=21', '-ac', '2', '-c:a', 'aac', '-b:a', '128k'])
  await gen('beep.m4a', ['-f', 'lavfi', '-i', 'sine=f=880:r=48000:d=8:beep_factor=4', '-ac', '2', '-c:a', 'aac', '-b:a', '128k'])
  const font = path.join(mediaDir, 'DejaVuSans-Bold.ttf')
  if (!(await exists(font))) await copyFile(bundledFontPath(), font)

  const timeline: TimelineFile = {
    schema: 'farm.timeline/1',
    name: 'renderswarm sample',
    fps: { num: FPS, den: 1 },
    width: W,
    height: H,
    sampleRate: 48000,
    duration: 600,
    assets: {
      bars: { path: 'media/bars.mp4' },
      life: { path: 'media/life.mp4' },
      rgb: { path: 'media/rgb.mp4' },
      tone: { path: 'media/tone.m4a' },
      beep: { path: 'media/beep.m4a' },
      font: { path: 'media/DejaVuSans-Bold.ttf' }
    },
    video: [
      {
        clips: [
          { id: 'bars', type: 'media', asset: 'bars', start: 0, length: 240, srcIn: 15, fadeIn: 15 },
          { id: 'life', type: 'media', asset: 'life', start: 210, length: 210, srcIn: 0, fx: [{ k: 'eq', saturation: 1.3, contrast: 1.1 }] },
          { id: 'rgb', type: 'media', asset: 'rgb', start: 420, length: 180, srcIn: 30, fadeOut: 20 }
        ],
        transitions: [{ a: 'bars', b: 'life', kind: 'dissolve' }]
      },
      {
        clips: [
          { id: 'title', type: 'text', text: 'renderswarm — sample', font: 'font', size: 64, color: '#FFFFFF', x: 80, y: 560, start: 20, length: 150 }
        ]
      }
    ],
    audio: [
      { clips: [{ id: 'tone', type: 'media', asset: 'tone', start: 0, length: 600, srcIn: 0, volume: 0.5, fadeIn: 10, fadeOut: 30 }] },
      { clips: [{ id: 'beep', type: 'media', asset: 'beep', start: 300, length: 200, srcIn: 0 }], volume: 0.4 }
    ]
  }
  const file = path.join(dir, 'sample.timeline.json')
  await writeFile(file, JSON.stringify(timeline, null, 2) + '\n')
  return file
}

async function exists (file: string): Promise<boolean> {
  return stat(file).then(() => true, () => false)
}
