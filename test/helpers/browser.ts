/**
 * Real headless Chromium (Debian's `chromium`) driven by playwright-core, optionally inside a
 * test's network namespace so that it reaches an agent's 127.0.0.1 API there.
 *
 *   if (!hasChromium()) …skip
 *   const browser = await launchChromium({ dir, netns: host.ns })
 *   const page = await browser.newPage(); const seen = watchPage(page)
 *   …; expect(seen.errors).toEqual([]); await browser.close()
 *
 * In a namespace, Chromium is started through a two-line wrapper script
 * (`exec ip netns exec NS chromium "$@"`): `ip netns exec` enters the namespace and execs
 * Chromium in place, so playwright's pipe (fds 3 and 4) and the PID it ends are Chromium's own.
 */
import { accessSync, constants } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'

export const CHROMIUM = process.env.RENDERSWARM_CHROMIUM ?? '/usr/bin/chromium'

/** The flags from DESIGN.md: no sandbox (root in a container), no GPU, nothing fetched from the internet. */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']

export function hasChromium (): boolean {
  try { accessSync(CHROMIUM, constants.X_OK); return true } catch { return false }
}

export async function launchChromium (opts: { dir: string; netns?: string | undefined }): Promise<Browser> {
  let executablePath = CHROMIUM
  if (opts.netns !== undefined) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(opts.netns)) throw new Error(`netns name "${opts.netns}" is not a plain name`)
    executablePath = path.join(opts.dir, `chromium-in-${opts.netns}.sh`)
    await writeFile(executablePath, `#!/bin/sh\nexec ip netns exec ${opts.netns} ${JSON.stringify(CHROMIUM)} "$@"\n`, { mode: 0o755 })
  }
  return await chromium.launch({ executablePath, args: CHROMIUM_ARGS, timeout: 60_000 })
}

export interface PageWatch {
  /** Uncaught page errors, console errors and Content-Security-Policy violations, as they happened. */
  errors: string[]
  /** Every request URL the page made (to prove it fetched nothing from elsewhere). */
  requests: string[]
}

export function watchPage (page: Page): PageWatch {
  const w: PageWatch = { errors: [], requests: [] }
  page.on('pageerror', (e) => { w.errors.push(`pageerror: ${e.message}`) })
  page.on('console', (m) => { if (m.type() === 'error') w.errors.push(`console: ${m.text()}`) })
  page.on('request', (r) => { w.requests.push(r.url()) })
  void page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => { console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`) })
  })
  return w
}
