/**
 * `renderswarm open`: the dashboard of this machine's agent. Prints its URL, with the access
 * token from `<state-dir>/api.json` in the fragment (browsers never send a fragment to a
 * server; the page trades it for an HttpOnly cookie and drops it), and opens it in the
 * desktop's browser (xdg-open, open, start) unless --no-browser is given or none is found.
 *
 *   renderswarm open [--no-browser] [--state-dir DIR]
 *
 * Exit codes: 0 printed (and opened when asked), 1 no agent running, 2 bad arguments.
 */
import { spawn } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { parseArgs } from 'node:util'

export class OpenUsageError extends Error {
  override readonly name = 'UsageError'
}

/** The dashboard URL for an agent's api.json contents; throws naming what is wrong with it. */
export function dashboardUrl (info: unknown): string {
  const i = info as { url?: unknown; token?: unknown } | null
  if (typeof i !== 'object' || i === null) throw new Error('api.json: not a JSON object')
  if (typeof i.url !== 'string' || !/^http:\/\/127\.0\.0\.1:\d{1,5}$/.test(i.url)) throw new Error('api.json: "url" must be http://127.0.0.1:PORT')
  if (typeof i.token !== 'string' || !/^[A-Za-z0-9_-]{16,128}$/.test(i.token)) throw new Error('api.json: "token" is missing or malformed')
  return `${i.url}/#token=${i.token}`
}

/** The desktop's "open this URL" command for a platform, as argv (the URL appended), or undefined. */
export function openerFor (platform: NodeJS.Platform, onPath: (cmd: string) => boolean): string[] | undefined {
  if (platform === 'darwin') return onPath('open') ? ['open'] : undefined
  // `start` is a cmd.exe builtin; its first quoted argument is a window title.
  if (platform === 'win32') return ['cmd', '/c', 'start', '']
  return onPath('xdg-open') ? ['xdg-open'] : undefined
}

function onPath (cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue
    try { accessSync(path.join(dir, cmd), constants.X_OK); return true } catch { /* not here */ }
  }
  return false
}

export async function openCmd (args: string[], defaultStateDir: () => string): Promise<number> {
  let values
  try {
    ({ values } = parseArgs({ args, options: { 'no-browser': { type: 'boolean', default: false }, 'state-dir': { type: 'string' } }, allowPositionals: false, strict: true }))
  } catch (err) {
    throw new OpenUsageError(`${(err as Error).message}\nusage: renderswarm open [--no-browser] [--state-dir DIR]`)
  }
  const stateDir = path.resolve(values['state-dir'] ?? defaultStateDir())
  const file = path.join(stateDir, 'api.json')
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch {
    process.stderr.write(`renderswarm: no agent is running for ${stateDir} (no api.json); start one with: renderswarm agent --state-dir ${stateDir}\n`)
    return 1
  }
  let url: string
  try {
    url = dashboardUrl(JSON.parse(text))
  } catch (err) {
    process.stderr.write(`renderswarm: ${file}: ${(err as Error).message}\n`)
    return 1
  }
  process.stdout.write(url + '\n')
  if (values['no-browser'] === true) return 0
  const opener = openerFor(process.platform, onPath)
  if (opener === undefined) {
    process.stderr.write('no browser opener found (xdg-open); open the URL above in a browser on this machine\n')
    return 0
  }
  // Detached: the browser outlives this command. The URL is one argv element, never a shell string.
  const child = spawn(opener[0]!, [...opener.slice(1), url], { stdio: 'ignore', detached: true })
  const failed = await new Promise<string | undefined>((resolve) => {
    child.once('error', (err) => { resolve(err.message) })
    child.once('spawn', () => { resolve(undefined) })
  })
  if (failed !== undefined) process.stderr.write(`could not start ${opener[0]!} (${failed}); open the URL above in a browser on this machine\n`)
  child.unref()
  return 0
}
