/** Rewrites ui/tray/icons/*.png from ui/tray/icons.ts: node bin/run-ts.js ui/tray/make-icons.ts */
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { allIcons, ICON_DIR } from './icons.ts'

await mkdir(ICON_DIR, { recursive: true })
for (const [name, png] of allIcons()) {
  await writeFile(path.join(ICON_DIR, name), png)
  process.stdout.write(`wrote ${path.join(ICON_DIR, name)} (${png.length} bytes)\n`)
}
