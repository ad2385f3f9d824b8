/**
 * Vite config of the dashboard: builds ui/dashboard/ into dist/dashboard/ (what agents serve).
 *
 *   npm run dashboard:build      # also part of `npm install` (scripts/build.mjs)
 *   RENDERSWARM_STATE_DIR=~/.local/state/renderswarm npm run dashboard:dev
 *                                # live-reloading page on http://127.0.0.1:5173/ with /v1 proxied to that agent
 *
 * Everything is bundled: no CDN, no web fonts, nothing fetched from the internet, so the
 * page works offline and under the agent's `default-src 'self'` Content-Security-Policy.
 */
import { readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'

const here = path.dirname(fileURLToPath(import.meta.url))

/** The dev server proxies /v1 to the agent of RENDERSWARM_STATE_DIR (its api.json), with its token. */
function agentProxy (): Record<string, { target: string; headers: Record<string, string> }> | undefined {
  const dir = process.env.RENDERSWARM_STATE_DIR ?? path.join(process.env.XDG_STATE_HOME ?? path.join(os.homedir(), '.local', 'state'), 'renderswarm')
  try {
    const info = JSON.parse(readFileSync(path.join(dir, 'api.json'), 'utf8')) as { url: string; token: string }
    return { '/v1': { target: info.url, headers: { authorization: `Bearer ${info.token}` } } }
  } catch {
    return undefined
  }
}

export default defineConfig(({ command }) => ({
  root: here,
  base: '/',
  publicDir: path.join(here, 'public'),
  logLevel: 'warn',
  build: {
    outDir: path.join(here, '..', '..', 'dist', 'dashboard'),
    emptyOutDir: true,
    sourcemap: false,
    // One small script and one stylesheet; nothing inlined as data: URLs (CSP default-src 'self').
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: 'es2022'
  },
  server: command === 'serve' ? { host: '127.0.0.1', port: 5173, strictPort: false, proxy: agentProxy() } : undefined
}))
