#!/usr/bin/env node
/**
 * `npm run tray`: bundles the tray's Electron main process (ui/tray/main.ts → dist/tray/main.mjs,
 * esbuild, electron external) and starts Electron on it. Where Electron's binary is missing (it
 * is an optionalDependency whose download can fail, as on machines without internet), it says
 * so and how to get it, and exits 1.
 *
 *   npm run tray                          # the tray for the default state dir
 *   npm run tray -- --state-dir DIR       # for the agent of DIR
 *   node ui/tray/launch.mjs --build-only [--out FILE]   # just the bundle (electron-builder packages it)
 */
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const args = process.argv.slice(2)
const buildOnly = args.includes('--build-only')
const outAt = args.indexOf('--out')
const OUT = outAt >= 0 && args[outAt + 1] !== undefined ? path.resolve(args[outAt + 1]) : path.join(ROOT, 'dist', 'tray', 'main.mjs')

/** Electron's binary, or undefined with the reason. */
function electronBinary () {
  try {
    // node_modules/electron/index.js exports the binary's path, and throws when the download never happened.
    return { bin: createRequire(import.meta.url)('electron') }
  } catch (err) {
    return { why: err.code === 'MODULE_NOT_FOUND' ? 'the electron package is not installed' : err.message.split('\n')[0] }
  }
}

async function bundle () {
  let esbuild
  try {
    esbuild = await import('esbuild')
  } catch {
    esbuild = await import(path.join(ROOT, 'node_modules', 'tsx', 'node_modules', 'esbuild', 'lib', 'main.js'))
  }
  await esbuild.build({
    absWorkingDir: ROOT, entryPoints: ['ui/tray/main.ts'], outfile: OUT, bundle: true, format: 'esm', platform: 'node', target: 'node20',
    external: ['electron'], logLevel: 'warning', sourcemap: true,
    banner: { js: '// Built by ui/tray/launch.mjs from ui/tray/main.ts; do not edit.' }
  })
}

const electron = buildOnly ? undefined : electronBinary()
if (electron !== undefined && electron.bin === undefined) {
  process.stderr.write(`renderswarm tray: Electron is not available here (${electron.why}).
The tray app needs Electron's binary, an optional download that did not happen on this machine.
Get it where downloads work:  npm install electron   (or set ELECTRON_OVERRIDE_DIST_PATH to an unpacked Electron)
Meanwhile the same view is in the dashboard:  renderswarm open   and figures in:  renderswarm status --json
`)
  process.exit(1)
}
await bundle()
if (buildOnly) {
  process.stdout.write(`wrote ${path.relative(ROOT, OUT)}\n`)
} else {
  const child = spawn(electron.bin, [OUT, ...args], { stdio: 'inherit' })
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { child.kill(sig) })
  child.on('exit', (code, signal) => { process.exitCode = code ?? (signal !== null ? 1 : 0) })
}
