/**
 * The cloud boot script, run for real by bash with stand-ins for node, npm, renderswarm and
 * systemctl on PATH that record the exact argv they get: hostile tokens, names and addresses
 * must arrive byte for byte, and nothing in them may run.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { agentArgsOf, bootstrapScript, BootstrapError, shellQuote, tokenOf } from '../../coordinator/cloud/bootstrap.ts'

const dirs: string[] = []
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }) })

const HOSTILE = [
  "'; touch PWNED; echo '",
  '$(touch PWNED)',
  '`touch PWNED`',
  '"; touch PWNED; "',
  'line1\nUNIT\ntouch PWNED\n',
  '\\\' \\" $HOME ${PATH} * ? [a] ~ ! # & | ; < > ( ) { }',
  'ünïcødé ✓ \t tab',
  "'\\''"
]

/** A sandbox: fake tools that log argv (NUL-separated) into log/<tool>.<n>. */
function sandbox (opts: { nodeMajor?: number; haveRenderswarm?: boolean } = {}): { dir: string; bin: string; log: string; state: string; service: string; calls: (tool: string) => string[][] } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rs-boot-'))
  dirs.push(dir)
  const bin = path.join(dir, 'bin'); const log = path.join(dir, 'log')
  mkdirSync(bin); mkdirSync(log)
  const recorder = (tool: string, extra = ''): void => {
    writeFileSync(path.join(bin, tool), `#!/bin/bash\nn=$(ls ${JSON.stringify(log)} | wc -l)\nprintf '%s\\0' "$@" > ${JSON.stringify(log)}/${tool}.$n\n${extra}\n`)
    chmodSync(path.join(bin, tool), 0o755)
  }
  recorder('node', `echo ${opts.nodeMajor ?? 20}`)
  recorder('curl', 'echo "echo nodesource-setup"')
  recorder('apt-get', `printf '#!/bin/bash\\necho 22\\n' > ${JSON.stringify(bin)}/node; chmod 755 ${JSON.stringify(bin)}/node`)
  recorder('systemctl')
  // npm install -g puts a renderswarm on PATH (as the real one would).
  recorder('npm', `printf '#!/bin/bash\\nn=$(ls ${log} | wc -l)\\nprintf "%%s\\\\0" "$@" > ${log}/renderswarm.$n\\n' > ${JSON.stringify(bin)}/renderswarm; chmod 755 ${JSON.stringify(bin)}/renderswarm`)
  if (opts.haveRenderswarm !== false) recorder('renderswarm')
  const state = path.join(dir, 'state'); const service = path.join(dir, 'systemd')
  mkdirSync(service)
  const calls = (tool: string): string[][] => readdirSync(log).filter((f) => f.startsWith(`${tool}.`))
    .sort((a, b) => Number(a.split('.')[1]) - Number(b.split('.')[1]))
    .map((f) => readFileSync(path.join(log, f), 'utf8').split('\0').slice(0, -1))
  return { dir, bin, log, state, service, calls }
}

function runScript (sb: ReturnType<typeof sandbox>, script: string): { status: number | null; stderr: string } {
  const file = path.join(sb.dir, 'boot.sh')
  writeFileSync(file, script, { mode: 0o700 })
  // /usr/bin still holds the real node: the fake comes first on PATH.
  const r = spawnSync('/bin/bash', [file], { cwd: sb.dir, env: { PATH: `${sb.bin}:/usr/bin:/bin`, HOME: sb.dir }, encoding: 'utf8', timeout: 20_000 })
  return { status: r.status, stderr: r.stderr }
}

describe('shellQuote', () => {
  it('round-trips every hostile string through a real bash', () => {
    const cwd = mkdtempSync(path.join(os.tmpdir(), 'rs-quote-'))
    dirs.push(cwd)
    for (const s of HOSTILE) {
      const out = execFileSync('/bin/bash', ['-c', `printf '%s' ${shellQuote(s)}`], { encoding: 'utf8', cwd })
      expect(out).toBe(s)
    }
    expect(existsSync(path.join(cwd, 'PWNED'))).toBe(false)
  })
  it('refuses NUL, which bash cannot carry', () => {
    expect(() => shellQuote('a\0b')).toThrow(/NUL/)
  })
})

describe('bootstrapScript', () => {
  it('joins with the exact token and starts the agent as a cloud member with the exact addresses, running nothing it was given', () => {
    for (const hostile of HOSTILE) {
      const sb = sandbox()
      const token = `tok-${hostile}`
      const addrs = ['/ip4/10.0.0.5/tcp/4001/p2p/12D3KooWabc', hostile]
      const script = bootstrapScript({ token, bootstrap: addrs, name: hostile, stateDir: sb.state, serviceDir: sb.service, listenPort: 4100 })
      expect(tokenOf(script)).toBe(token)
      const r = runScript(sb, script)
      expect(r.stderr).toBe('')
      expect(r.status).toBe(0)
      expect(sb.calls('renderswarm')).toEqual([['farm', 'join', token, '--state-dir', sb.state]])
      expect(sb.calls('npm')).toEqual([]) // renderswarm was there already
      expect(sb.calls('systemctl')).toEqual([['daemon-reload'], ['enable', '--now', 'renderswarm-agent.service']])
      const unit = readFileSync(path.join(sb.service, 'renderswarm-agent.service'), 'utf8')
      expect(unit).toContain(`ExecStart=${sb.state}/start-agent.sh\n`)
      // systemd would run the start script: run it the same way and read what the agent got.
      const s = spawnSync(path.join(sb.state, 'start-agent.sh'), [], { env: { PATH: `${sb.bin}:/usr/bin:/bin` }, encoding: 'utf8' })
      expect(s.status).toBe(0)
      expect(sb.calls('renderswarm')[1]).toEqual(['agent', '--state-dir', sb.state, '--location', 'cloud', '--no-mdns', '--listen', '/ip4/0.0.0.0/tcp/4100',
        '--name', hostile, '--bootstrap', addrs[0], '--bootstrap', hostile])
      expect(existsSync(path.join(sb.dir, 'PWNED'))).toBe(false)
      expect(existsSync(path.join(sb.state, 'PWNED'))).toBe(false)
      // The token is not left in the start script (it is single-use and secret).
      expect(readFileSync(path.join(sb.state, 'start-agent.sh'), 'utf8')).not.toContain('tok-')
    }
  })

  it('installs node when it is missing or too old, and renderswarm when it is missing', () => {
    const sb = sandbox({ nodeMajor: 18, haveRenderswarm: false })
    const r = runScript(sb, bootstrapScript({ token: 'T', bootstrap: ['/ip4/10.0.0.5/tcp/4001'], stateDir: sb.state, serviceDir: sb.service, packageSpec: 'renderswarm@0.1.0' }))
    expect(r.status).toBe(0)
    expect(sb.calls('curl')).toEqual([['-fsSL', 'https://deb.nodesource.com/setup_20.x']])
    expect(sb.calls('apt-get')).toEqual([['install', '-y', 'nodejs']])
    expect(sb.calls('npm')).toEqual([['install', '-g', 'renderswarm@0.1.0']])
    expect(sb.calls('renderswarm')[0]).toEqual(['farm', 'join', 'T', '--state-dir', sb.state])
  })

  it('stops before starting anything when the join fails', () => {
    const sb = sandbox()
    writeFileSync(path.join(sb.bin, 'renderswarm'), '#!/bin/bash\necho "invite expired" >&2\nexit 2\n')
    const r = runScript(sb, bootstrapScript({ token: 'T', bootstrap: ['/ip4/10.0.0.5/tcp/4001'], stateDir: sb.state, serviceDir: sb.service }))
    expect(r.status).toBe(2)
    expect(r.stderr).toContain('invite expired')
    expect(sb.calls('systemctl')).toEqual([])
    expect(existsSync(path.join(sb.service, 'renderswarm-agent.service'))).toBe(false)
  })

  it('respects the size limit (EC2: 16 KB) instead of cutting the script', () => {
    const addr = `/dns4/${'a'.repeat(200)}.example/tcp/4001`
    const eight = Array.from({ length: 8 }, () => addr)
    expect(Buffer.byteLength(bootstrapScript({ token: 'x'.repeat(4096), bootstrap: eight }))).toBeLessThanOrEqual(16 * 1024)
    expect(() => bootstrapScript({ token: 'x'.repeat(20_000), bootstrap: ['/ip4/1.2.3.4/tcp/1'] })).toThrow(/bytes; at most 16384/)
    expect(() => bootstrapScript({ token: 'x'.repeat(3000), bootstrap: ['/ip4/1.2.3.4/tcp/1'], maxBytes: 2048 })).toThrow(/at most 2048/)
  })

  it('refuses bad options by name', () => {
    const ok = { token: 'T', bootstrap: ['/ip4/1.2.3.4/tcp/1'] }
    expect(() => bootstrapScript({ ...ok, token: '' })).toThrow(BootstrapError)
    expect(() => bootstrapScript({ ...ok, bootstrap: [] })).toThrow(/bootstrap address/)
    expect(() => bootstrapScript({ ...ok, bootstrap: Array.from({ length: 9 }, () => '/ip4/1.2.3.4/tcp/1') })).toThrow(/at most 8/)
    expect(() => bootstrapScript({ ...ok, token: 'a\0b' })).toThrow(/NUL/)
    expect(() => bootstrapScript({ ...ok, stateDir: '/var/lib/$(id)' })).toThrow(/stateDir/)
    expect(() => bootstrapScript({ ...ok, stateDir: '/var/../etc' })).toThrow(/stateDir/)
    expect(() => bootstrapScript({ ...ok, serviceDir: 'relative' })).toThrow(/serviceDir/)
    expect(() => bootstrapScript({ ...ok, listenPort: 70000 })).toThrow(/listenPort/)
    expect(() => bootstrapScript({ ...ok, packageSpec: 'x; rm -rf /' })).toThrow(/packageSpec/)
    expect(() => bootstrapScript({ ...ok, nodeMajor: 18 })).toThrow(/nodeMajor/)
  })
})

describe('agentArgsOf', () => {
  it('reads back the exact agent arguments, hostile ones included', () => {
    for (const hostile of HOSTILE) {
      const script = bootstrapScript({ token: 'T', bootstrap: ['/ip4/127.0.0.1/tcp/1', hostile], name: hostile })
      expect(agentArgsOf(script)).toEqual(['agent', '--state-dir', '/var/lib/renderswarm', '--location', 'cloud', '--no-mdns', '--listen', '/ip4/0.0.0.0/tcp/4001', '--name', hostile, '--bootstrap', '/ip4/127.0.0.1/tcp/1', '--bootstrap', hostile])
    }
    expect(agentArgsOf('#!/bin/bash\necho no args\n')).toBeUndefined()
  })
})
