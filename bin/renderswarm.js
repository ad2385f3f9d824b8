#!/usr/bin/env node
// The renderswarm command. Sources are TypeScript (see docs/decisions.md). It runs the
// precompiled bundle dist/renderswarm/ (`npm run build`, run by `npm install` as prepare) when
// that bundle was built from exactly the source files on disk (same mtime and size, per its
// build.json); otherwise, or with RENDERSWARM_TSX=1, it runs ui/cli/main.ts through tsx.
// The bundle starts faster and an idle agent uses much less memory: no loader thread, no
// per-module transform (docs/benchmarks.md, issue B).
import { readFileSync, statSync } from 'node:fs'

const root = new URL('../', import.meta.url)

/** The bundle's entry URL if it is fresh, else undefined. */
function freshBundle () {
  if (process.env.RENDERSWARM_TSX === '1') return undefined
  try {
    const dir = new URL('dist/renderswarm/', root)
    const manifest = JSON.parse(readFileSync(new URL('build.json', dir), 'utf8'))
    if (manifest.v !== 1 || typeof manifest.entry !== 'string') return undefined
    for (const [file, want] of Object.entries(manifest.inputs)) {
      const s = statSync(new URL(file, root), { throwIfNoEntry: false })
      if (want === null ? s !== undefined : (s === undefined || s.mtimeMs !== want[0] || s.size !== want[1])) return undefined
    }
    return new URL(manifest.entry, dir).href
  } catch {
    return undefined
  }
}

const bundle = freshBundle()
if (bundle !== undefined) {
  await import(bundle)
} else {
  const { register } = await import('tsx/esm/api')
  register()
  await import('../ui/cli/main.ts')
}
