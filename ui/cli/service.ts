/**
 * `renderswarm service install|uninstall|status`: the agent as a per-user service (spec M1) — a
 * systemd user unit on Linux, a launchd agent on macOS; Windows: docs/operations.md.
 *
 *   renderswarm service install [--enable] [--dry-run] [--state-dir DIR] [-- AGENT FLAGS…]
 *   renderswarm service uninstall [--disable] [--dry-run]
 *   renderswarm service status [--json] [--state-dir DIR]
 *
 * install writes ~/.config/systemd/user/renderswarm.service (or
 * ~/Library/LaunchAgents/com.renderswarm.agent.plist), prints what it wrote and the commands that
 * start it, and runs them only with --enable. --dry-run prints without writing. Flags after `--`
 * go to `renderswarm agent` (e.g. `-- --when idle --slots 2`). The generators below are pure
 * (paths and home come in; unit-tested in test/unit/service.test.ts).
 */
import { execFile } from 'node:child_process'
import { existsSync, realpathSync } from 'node:fs'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

export class ServiceError extends Error {
  override readonly name = 'UsageError'
}

export const UNIT_NAME = 'renderswarm'
export const LAUNCHD_LABEL = 'com.renderswarm.agent'

export interface ServiceSpec {
  /** Absolute path of node. */
  node: string
  /** Absolute path of bin/renderswarm.js. */
  bin: string
  /** Arguments after `renderswarm.js` (starting with 'agent'). */
  args: string[]
}

export interface Target { platform: NodeJS.Platform; home: string; xdgConfigHome?: string | undefined }

function checkText (what: string, s: string): void {
  // Newlines and other control characters would end a unit line or break the XML.
  if (/[\u0000-\u001f\u007f]/.test(s)) throw new ServiceError(`${what} must not contain control characters (got ${JSON.stringify(s).slice(0, 80)})`)
}

function checkSpec (spec: ServiceSpec): void {
  for (const [what, p] of [['the node path', spec.node], ['the renderswarm path', spec.bin]] as const) {
    checkText(what, p)
    if (!path.isAbsolute(p)) throw new ServiceError(`${what} must be absolute (got "${p}")`)
  }
  for (const a of spec.args) checkText('an agent argument', a)
}

/**
 * One word of an ExecStart line (systemd.service "Command lines"): double-quoted unless plain;
 * inside quotes \ and " are backslash-escaped; % is a specifier (%%) and $ a variable ($$) everywhere.
 */
export function systemdWord (s: string): string {
  const escaped = s.replaceAll('%', '%%').replaceAll('$', '$$$$')
  if (/^[A-Za-z0-9_@+=:,./-]+$/.test(s)) return escaped
  return `"${escaped.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`
}

export function systemdUnit (spec: ServiceSpec): string {
  checkSpec(spec)
  return `# Written by \`renderswarm service install\`; \`renderswarm service uninstall\` removes it.
[Unit]
Description=renderswarm agent (render farm member)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart=${[spec.node, spec.bin, ...spec.args].map(systemdWord).join(' ')}
Restart=on-failure
RestartSec=5
# SIGTERM lets the agent stop its renders and leave the farm cleanly.
KillSignal=SIGTERM
TimeoutStopSec=30

[Install]
WantedBy=default.target
`
}

export function xmlText (s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;').replaceAll("'", '&apos;')
}

export function launchdPlist (spec: ServiceSpec, logFile: string): string {
  checkSpec(spec)
  checkText('the log path', logFile)
  const str = (s: string): string => `<string>${xmlText(s)}</string>`
  return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- Written by renderswarm service install; renderswarm service uninstall removes it. -->
<plist version="1.0">
<dict>
  <key>Label</key>
  ${str(LAUNCHD_LABEL)}
  <key>ProgramArguments</key>
  <array>
${[spec.node, spec.bin, ...spec.args].map((a) => `    ${str(a)}`).join('\n')}
  </array>
  <key>RunAtLoad</key>
  <true/>
  <key>KeepAlive</key>
  <dict>
    <key>SuccessfulExit</key>
    <false/>
  </dict>
  <key>ProcessType</key>
  ${str('Background')}
  <key>StandardOutPath</key>
  ${str(logFile)}
  <key>StandardErrorPath</key>
  ${str(logFile)}
</dict>
</plist>
`
}

export interface ServicePlan {
  kind: 'systemd' | 'launchd'
  file: string
  content: string
  /** Commands that start it (argv lists, run without a shell), and how they are shown. */
  enable: string[][]
  disable: string[][]
  logs: string
}

export function servicePaths (t: Target): { kind: 'systemd' | 'launchd'; file: string; logFile?: string } {
  if (t.platform === 'linux') return { kind: 'systemd', file: path.join(t.xdgConfigHome ?? path.join(t.home, '.config'), 'systemd', 'user', `${UNIT_NAME}.service`) }
  if (t.platform === 'darwin') return { kind: 'launchd', file: path.join(t.home, 'Library', 'LaunchAgents', `${LAUNCHD_LABEL}.plist`), logFile: path.join(t.home, 'Library', 'Logs', 'renderswarm', 'agent.log') }
  throw new ServiceError(`renderswarm service installs a systemd user unit (Linux) or a launchd agent (macOS); on ${t.platform} see docs/operations.md (Windows: Task Scheduler or NSSM)`)
}

export function planService (t: Target, spec: ServiceSpec, uid: number): ServicePlan {
  const p = servicePaths(t)
  if (p.kind === 'systemd') {
    return {
      kind: 'systemd', file: p.file, content: systemdUnit(spec),
      enable: [['systemctl', '--user', 'daemon-reload'], ['systemctl', '--user', 'enable', '--now', UNIT_NAME]],
      disable: [['systemctl', '--user', 'disable', '--now', UNIT_NAME]],
      logs: `journalctl --user -u ${UNIT_NAME} -f`
    }
  }
  return {
    kind: 'launchd', file: p.file, content: launchdPlist(spec, p.logFile!),
    enable: [['launchctl', 'bootstrap', `gui/${uid}`, p.file]],
    disable: [['launchctl', 'bootout', `gui/${uid}/${LAUNCHD_LABEL}`]],
    logs: `tail -f ${p.logFile!}`
  }
}

/** A command as a POSIX shell would take it (for printing only; nothing here runs a shell). */
export function shellLine (argv: string[]): string {
  return argv.map((a) => /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`).join(' ')
}

/** bin/renderswarm.js as run now (resolving an npm bin symlink), else next to this file's package. */
function binPath (): string {
  const argv1 = process.argv[1]
  if (argv1 !== undefined && /renderswarm(\.js)?$/.test(argv1)) {
    try { return realpathSync(argv1) } catch { /* fall through */ }
  }
  return fileURLToPath(new URL('../../bin/renderswarm.js', import.meta.url))
}

function run (argv: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 127, out: `${stdout}${stderr}`.trim() })
    })
  })
}

export async function serviceCmd (args: string[], defaultStateDir: () => string): Promise<number> {
  const [sub, ...rest] = args
  let parsed
  try {
    parsed = parseArgs({
      args: rest, allowPositionals: true, strict: true,
      options: { enable: { type: 'boolean', default: false }, disable: { type: 'boolean', default: false }, 'dry-run': { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, 'state-dir': { type: 'string' } }
    })
  } catch (err) {
    throw new ServiceError((err as Error).message)
  }
  const { values, positionals } = parsed
  const target: Target = { platform: process.platform, home: os.homedir(), xdgConfigHome: process.env.XDG_CONFIG_HOME }
  const stateDir = path.resolve(values['state-dir'] ?? defaultStateDir())
  const spec: ServiceSpec = { node: process.execPath, bin: binPath(), args: ['agent', '--state-dir', stateDir, ...positionals] }
  const uid = process.getuid?.() ?? 0
  const out = (s: string): void => { process.stdout.write(s) }
  if (sub === 'install') {
    if (positionals.length > 0 && !rest.includes('--')) throw new ServiceError(`agent flags go after "--": renderswarm service install -- ${positionals.join(' ')}`)
    const plan = planService(target, spec, uid)
    if (values['dry-run'] === true) {
      out(`would write ${plan.file}:\n\n${plan.content}\nthen start it with:\n${plan.enable.map((c) => `  ${shellLine(c)}`).join('\n')}\n`)
      return 0
    }
    await mkdir(path.dirname(plan.file), { recursive: true })
    if (plan.kind === 'launchd') await mkdir(path.dirname(servicePaths(target).logFile!), { recursive: true })
    await writeFile(plan.file, plan.content, { mode: 0o644 })
    out(`wrote ${plan.file}:\n\n${plan.content}\n`)
    if (values.enable !== true) {
      out(`start it now and at every login with:\n${plan.enable.map((c) => `  ${shellLine(c)}`).join('\n')}\n(or run: renderswarm service install --enable)\nlogs: ${plan.logs}\n`)
      return 0
    }
    for (const c of plan.enable) {
      out(`$ ${shellLine(c)}\n`)
      const r = await run(c)
      if (r.out !== '') out(`${r.out}\n`)
      if (r.code !== 0) { process.stderr.write(`renderswarm: "${shellLine(c)}" failed (exit ${r.code}); the ${plan.kind === 'systemd' ? 'unit' : 'plist'} is written, start it by hand\n`); return 1 }
    }
    out(`the agent runs as a service now; logs: ${plan.logs}\n`)
    return 0
  }
  if (sub === 'uninstall') {
    const plan = planService(target, spec, uid)
    const installed = existsSync(plan.file)
    if (values['dry-run'] === true) { out(installed ? `would remove ${plan.file}\n` : `${plan.file} is not there; nothing to remove\n`); return 0 }
    if (values.disable === true) {
      for (const c of plan.disable) { out(`$ ${shellLine(c)}\n`); const r = await run(c); if (r.out !== '') out(`${r.out}\n`) }
    } else if (installed) {
      out(`stop it first if it runs:\n${plan.disable.map((c) => `  ${shellLine(c)}`).join('\n')}\n(or run: renderswarm service uninstall --disable)\n`)
    }
    if (!installed) { out(`${plan.file} is not there; nothing to remove\n`); return 0 }
    await rm(plan.file, { force: true })
    if (plan.kind === 'systemd' && values.disable === true) await run(['systemctl', '--user', 'daemon-reload'])
    out(`removed ${plan.file}; the agent's state stays in ${stateDir}\n`)
    return 0
  }
  if (sub === 'status') {
    const p = servicePaths(target)
    const installed = existsSync(p.file)
    const content = installed ? await readFile(p.file, 'utf8') : undefined
    const state = !installed ? 'not installed'
      : p.kind === 'systemd' ? (await run(['systemctl', '--user', 'is-active', UNIT_NAME])).out.split('\n')[0] || 'unknown'
        : (await run(['launchctl', 'print', `gui/${uid}/${LAUNCHD_LABEL}`])).code === 0 ? 'loaded' : 'not loaded'
    const api = existsSync(path.join(stateDir, 'api.json'))
    const report = { kind: p.kind, file: p.file, installed, state, stateDir, agentApi: api, ...(content !== undefined ? { ownsStateDir: content.includes(stateDir) || content.includes(xmlText(stateDir)) || content.includes(systemdWord(stateDir)) } : {}) }
    if (values.json === true) out(JSON.stringify(report) + '\n')
    else out(`${p.kind} ${p.file}: ${installed ? state : 'not installed'}\nagent API for ${stateDir}: ${api ? 'api.json present (renderswarm status to ask it)' : 'no api.json: no agent running for this state dir'}\n`)
    return 0
  }
  throw new ServiceError('usage: renderswarm service install [--enable] [--dry-run] [-- AGENT FLAGS…] | uninstall [--disable] [--dry-run] | status [--json]')
}
