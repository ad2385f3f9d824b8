#!/usr/bin/env node
/**
 * Builds the precompiled CLI bundle that `bin/renderswarm.js` runs when it is fresh:
 * dist/renderswarm/ (ESM chunks, one per lazily imported command) plus build.json, the list of
 * every source file it was built from with its mtime and size. Run by `npm install` (prepare)
 * and `npm run build`; never needed for tests, which run the sources through tsx/vitest.
 *
 *   node scripts/build.mjs            # exits 0 even when esbuild is missing (the CLI then uses tsx)
 *
 * It then builds the web dashboard into dist/dashboard/ with Vite (buildDashboard, below).
 *
 * Why: a long-running agent through tsx costs ~80 MB more RSS and ~0.6 s more start-up
 * (tsx's loader thread and its transform of every module); see docs/benchmarks.md, issue B.
 * better-sqlite3 (native), fluent-ffmpeg and google-gax (use __dirname) and the other cloud SDKs
 * (large, loaded only when cloud.json names that cloud) stay external; packages found at
 * run time with createRequire (ffmpeg/ffprobe installers, node-nvidia-smi) are not seen by esbuild.
 */
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const OUT = path.join(ROOT, 'dist', 'renderswarm')
const ENTRY = 'ui/cli/main.ts'
/** Files outside the import graph whose change makes the bundle stale (dependencies changed). */
const ALSO_WATCH = ['package.json', 'node_modules/.package-lock.json']

async function loadEsbuild () {
  try {
    return await import('esbuild')
  } catch {
    // esbuild comes with tsx; npm may have nested it under tsx instead of hoisting it.
    return await import(path.join(ROOT, 'node_modules', 'tsx', 'node_modules', 'esbuild', 'lib', 'main.js'))
  }
}

async function main () {
  let esbuild
  try {
    esbuild = await loadEsbuild()
  } catch (err) {
    process.stderr.write(`renderswarm build: esbuild not found (${err.message}); the CLI runs the TypeScript sources through tsx\n`)
    return
  }
  const t0 = Date.now()
  const tmp = `${OUT}.tmp-${process.pid}`
  try {
    await build(esbuild, tmp, t0)
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
}

async function build (esbuild, tmp, t0) {
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: { main: ENTRY },
    outdir: tmp,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    // better-sqlite3 is native; fluent-ffmpeg finds its presets through __dirname; xsalsa20 (the
    // pnet cipher) must be the one copy agent/polyfill.ts patches (docs/decisions.md #19).
    external: ['better-sqlite3', 'fluent-ffmpeg', 'xsalsa20', '@aws-sdk/client-ec2', '@google-cloud/compute', 'google-gax', '@azure/arm-compute', '@azure/identity'],
    // CommonJS dependencies inside an ESM bundle still call require() for Node built-ins.
    banner: { js: "import { createRequire as __rsCreateRequire } from 'node:module'; const require = __rsCreateRequire(import.meta.url);" },
    // Fault injection (agent/faults.ts) exists only when running the sources, never in the bundle.
    define: { 'process.env.RENDERSWARM_FAULTS': 'undefined' },
    sourcemap: 'linked',
    metafile: true,
    logLevel: 'warning'
  })
  const files = [...new Set([...Object.keys(result.metafile.inputs).filter((f) => !f.split('/').includes('node_modules') && !f.includes(':')), ...ALSO_WATCH])]
  const inputs = {}
  for (const f of files.sort()) {
    const s = await stat(path.join(ROOT, f)).catch(() => undefined)
    if (s !== undefined && s.mtimeMs >= t0) {
      // Changed while we were building: no manifest, so the CLI keeps using the sources.
      process.stderr.write(`renderswarm build: ${f} changed during the build; run \`npm run build\` again\n`)
      return
    }
    inputs[f] = s === undefined ? null : [s.mtimeMs, s.size]
  }
  const manifest = { v: 1, entry: 'main.js', builtAt: new Date().toISOString(), node: process.version, esbuild: esbuild.version, inputs }
  await writeFile(path.join(tmp, 'build.json'), JSON.stringify(manifest, null, 1) + '\n')
  await mkdir(path.dirname(OUT), { recursive: true })
  await rm(OUT, { recursive: true, force: true })
  await rename(tmp, OUT)
  process.stderr.write(`renderswarm build: ${path.relative(ROOT, OUT)} from ${files.length} files in ${Date.now() - t0} ms\n`)
}

/**
 * The web dashboard (ui/dashboard/, Preact) into dist/dashboard/, which every agent serves at
 * its API's `/`. Vite is a dev dependency: without it (an install without dev dependencies uses
 * the dist/dashboard/ it shipped with) this step says so and leaves dist/dashboard/ alone.
 */
async function buildDashboard () {
  let vite
  try {
    vite = await import('vite')
  } catch (err) {
    process.stderr.write(`renderswarm build: vite not found (${err.message}); the dashboard is not rebuilt\n`)
    return
  }
  const t0 = Date.now()
  try {
    await vite.build({ configFile: path.join(ROOT, 'ui', 'dashboard', 'vite.config.ts'), logLevel: 'warn' })
    process.stderr.write(`renderswarm build: dist/dashboard in ${Date.now() - t0} ms\n`)
  } catch (err) {
    // Like the CLI bundle, a failed dashboard build must not fail `npm install`; agents then answer / with how to build it.
    process.stderr.write(`renderswarm build: the dashboard failed to build (${err.message}); run \`npm run dashboard:build\` to see why\n`)
  }
}

main().catch((err) => {
  // A failed build must not fail `npm install`: without a fresh bundle the CLI uses tsx.
  process.stderr.write(`renderswarm build failed: ${err.message}; the CLI runs the TypeScript sources through tsx\n`)
}).then(buildDashboard)
