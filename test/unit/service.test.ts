/**
 * `renderswarm service`: the systemd unit and launchd plist generators (quoting checked by
 * reading the files back the way systemd and an XML parser would), the paths under an
 * overridden HOME, and the command itself writing, printing and removing a unit in a temp HOME.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFile, execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { launchdPlist, planService, ServiceError, servicePaths, shellLine, systemdUnit, systemdWord, type ServiceSpec } from '../../ui/cli/service.ts'
import { BIN } from '../helpers/agents.ts'

const HOSTILE = ['/Users/Ana Lopez/render farm/state', 'it\'s "quoted"', 'back\\slash', '100%', '$HOME and ${PATH}', 'semi;colon', ';', 'ünïcødé ✓', '<tag>&amp;</tag>', '--name=bay 1']

/** Splits an ExecStart value as systemd does (systemd.syntax "Quoting", then %% and $$). */
function systemdSplit (line: string): string[] {
  const words: string[] = []
  let i = 0
  while (i < line.length) {
    if (line[i] === ' ') { i++; continue }
    let w = ''
    if (line[i] === '"') {
      i++
      while (line[i] !== '"') {
        if (i >= line.length) throw new Error(`unclosed quote in ${line}`)
        if (line[i] === '\\') { const n = line[i + 1]; if (n !== '\\' && n !== '"') throw new Error(`unexpected escape \\${n ?? ''}`); w += n; i += 2 } else w += line[i++]
      }
      i++
      if (i < line.length && line[i] !== ' ') throw new Error('a quoted word must end at a space')
    } else {
      while (i < line.length && line[i] !== ' ') {
        if (line[i] === '\\' || line[i] === '"' || line[i] === "'") throw new Error(`bare ${line[i]} in an unquoted word of ${line}`)
        w += line[i++]
      }
    }
    // Specifiers and variables: any lone % or $ would be expanded.
    if (/%(?!%)/.test(w.replaceAll('%%', ''))) throw new Error(`unescaped % in ${w}`)
    if (/\$(?!\$)/.test(w.replaceAll('$$', ''))) throw new Error(`unescaped $ in ${w}`)
    words.push(w.replaceAll('%%', '%').replaceAll('$$', '$'))
  }
  return words
}

/** A strict enough XML reader for the plist: well-formed tags, only the five entities, no stray < or &; returns a tree. */
interface XmlNode { tag: string; children: XmlNode[]; text: string }
function parseXml (xml: string): XmlNode {
  const body = xml.replace(/^<\?xml version="1\.0" encoding="UTF-8"\?>\n<!DOCTYPE plist PUBLIC "-\/\/Apple\/\/DTD PLIST 1\.0\/\/EN" "http:\/\/www\.apple\.com\/DTDs\/PropertyList-1\.0\.dtd">\n/, '')
  if (body === xml) throw new Error('missing XML declaration or plist DOCTYPE')
  const root: XmlNode = { tag: '#root', children: [], text: '' }
  const stack = [root]
  const unescape = (t: string): string => {
    if (/<|&(?!(amp|lt|gt|quot|apos);)/.test(t)) throw new Error(`bad character data: ${t}`)
    return t.replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&quot;', '"').replaceAll('&apos;', "'").replaceAll('&amp;', '&')
  }
  for (const m of body.matchAll(/<!--[^]*?-->|<(\/?)([A-Za-z]+)((?: [a-z]+="[^"<&]*")*)\s*(\/?)>|([^<]+)/g)) {
    if (m[0].startsWith('<!--')) { if (m[0].slice(4, -3).includes('--')) throw new Error('"--" inside a comment'); continue }
    const top = stack[stack.length - 1]!
    if (m[5] !== undefined) { if (m[5].trim() !== '') top.text += unescape(m[5]); continue }
    if (m[1] === '/') {
      if (top.tag !== m[2]) throw new Error(`</${m[2]!}> closes <${top.tag}>`)
      stack.pop()
    } else {
      const node = { tag: m[2]!, children: [], text: '' }
      top.children.push(node)
      if (m[4] !== '/') stack.push(node)
    }
  }
  if (stack.length !== 1) throw new Error(`<${stack[stack.length - 1]!.tag}> is not closed`)
  const joined = [...body.matchAll(/<!--[^]*?-->|<(\/?)([A-Za-z]+)((?: [a-z]+="[^"<&]*")*)\s*(\/?)>|([^<]+)/g)].map((m) => m[0]).join('')
  if (joined !== body) throw new Error('text the reader could not match (a stray "<")')
  return root.children.length === 1 ? root.children[0]! : (() => { throw new Error('one root element expected') })()
}

/** A plist <dict> as key → node. */
function dict (n: XmlNode): Map<string, XmlNode> {
  expect(n.tag).toBe('dict')
  const m = new Map<string, XmlNode>()
  for (let i = 0; i < n.children.length; i += 2) {
    expect(n.children[i]!.tag).toBe('key')
    m.set(n.children[i]!.text, n.children[i + 1]!)
  }
  return m
}

/** Where the real readers exist (systemd's own unit parser, Python's plistlib), the files go through them too. */
const has = (cmd: string): boolean => { try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true } catch { return false } }
const REAL_READERS = { systemd: has('systemd-analyze'), plistlib: has('python3') }

const spec = (args: string[] = []): ServiceSpec => ({ node: '/opt/node 20/bin/node', bin: '/home/ana/my apps/renderswarm/bin/renderswarm.js', args: ['agent', '--state-dir', '/home/ana/.local/state/renderswarm', ...args] })

describe('systemd unit', () => {
  it('quotes every word so systemd reads back exactly the argv (spaces, quotes, backslashes, %, $)', async () => {
    for (const h of HOSTILE) expect(systemdSplit(systemdWord(h)), h).toEqual([h])
    const s = spec(['--name', ...HOSTILE])
    const unit = systemdUnit(s)
    const exec = /^ExecStart=(.*)$/m.exec(unit)![1]!
    expect(systemdSplit(exec)).toEqual([s.node, s.bin, ...s.args])
    expect(exec.startsWith('"/opt/node 20/bin/node" "/home/ana/my apps/renderswarm/bin/renderswarm.js" agent --state-dir /home/ana/.local/state/renderswarm')).toBe(true)
    if (REAL_READERS.systemd) {
      // systemd's own parser: the unit loads without a warning (an unbalanced quote or a bad escape fails here).
      const dir = mkdtempSync(path.join(os.tmpdir(), 'rs-unit-'))
      try {
        writeFileSync(path.join(dir, 'renderswarm.service'), systemdUnit({ ...s, node: process.execPath, bin: BIN }))
        const { stderr } = await promisify(execFile)('systemd-analyze', ['verify', path.join(dir, 'renderswarm.service')], { timeout: 30_000 })
        expect(stderr).toBe('')
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    }
  })

  it('is a user unit that restarts on failure and starts at login', () => {
    const unit = systemdUnit(spec())
    const sections = new Map<string, Map<string, string>>()
    let cur: Map<string, string> | undefined
    for (const line of unit.split('\n')) {
      if (line === '' || line.startsWith('#')) continue
      const sec = /^\[(\w+)\]$/.exec(line)
      if (sec !== null) { cur = new Map(); sections.set(sec[1]!, cur); continue }
      const kv = /^(\w+)=(.*)$/.exec(line)
      expect(kv, line).not.toBeNull()
      cur!.set(kv![1]!, kv![2]!)
    }
    expect([...sections.keys()]).toEqual(['Unit', 'Service', 'Install'])
    expect(sections.get('Service')!.get('Restart')).toBe('on-failure')
    expect(sections.get('Service')!.get('Type')).toBe('simple')
    expect(sections.get('Install')!.get('WantedBy')).toBe('default.target')
  })

  it('refuses control characters and relative paths, naming the problem', () => {
    expect(() => systemdUnit(spec(['--name', 'a\nExecStartPre=/bin/rm -rf ~']))).toThrow(/an agent argument must not contain control characters/)
    expect(() => systemdUnit({ ...spec(), node: 'node' })).toThrow(/the node path must be absolute/)
    expect(() => systemdUnit({ ...spec(), bin: 'bin/renderswarm.js' })).toThrow(ServiceError)
  })
})

describe('launchd plist', () => {
  it('is well-formed XML with the argv unescaped back exactly, restart on failure, and a log file', () => {
    const s = spec(['--name', ...HOSTILE])
    const root = parseXml(launchdPlist(s, '/Users/Ana Lopez/Library/Logs/renderswarm/agent.log'))
    expect(root.tag).toBe('plist')
    const d = dict(root.children[0]!)
    expect(d.get('Label')!.text).toBe('com.renderswarm.agent')
    expect(d.get('ProgramArguments')!.children.map((c) => { expect(c.tag).toBe('string'); return c.text })).toEqual([s.node, s.bin, ...s.args])
    expect(d.get('RunAtLoad')!.tag).toBe('true')
    const keepAlive = dict(d.get('KeepAlive')!)
    expect(keepAlive.get('SuccessfulExit')!.tag).toBe('false')
    expect(d.get('StandardErrorPath')!.text).toBe('/Users/Ana Lopez/Library/Logs/renderswarm/agent.log')
    if (REAL_READERS.plistlib) {
      const read = execFileSync('python3', ['-c', 'import plistlib, sys, json; d = plistlib.loads(sys.stdin.buffer.read()); print(json.dumps([d["Label"], d["ProgramArguments"], d["KeepAlive"], d["RunAtLoad"]]))'],
        { input: launchdPlist(s, '/tmp/a.log'), timeout: 30_000 }).toString()
      expect(JSON.parse(read)).toEqual(['com.renderswarm.agent', [s.node, s.bin, ...s.args], { SuccessfulExit: false }, true])
    }
  })

  it('the reader used above refuses broken XML (so the check can fail)', () => {
    const good = launchdPlist(spec(), '/tmp/a.log')
    expect(() => parseXml(good.replace('<string>agent</string>', '<string>a&b</string>'))).toThrow(/bad character data/)
    expect(() => parseXml(good.replace('</array>', ''))).toThrow(/closes/)
    expect(() => parseXml(good.replace('<string>agent</string>', '<string>a<b</string>'))).toThrow()
    expect(() => launchdPlist(spec(['\u0007']), '/tmp/a.log')).toThrow(/control characters/)
  })
})

describe('paths and plans', () => {
  it('puts the unit and the plist under the given HOME (and XDG_CONFIG_HOME when set)', () => {
    expect(servicePaths({ platform: 'linux', home: '/tmp/h o' })).toEqual({ kind: 'systemd', file: '/tmp/h o/.config/systemd/user/renderswarm.service' })
    expect(servicePaths({ platform: 'linux', home: '/tmp/h', xdgConfigHome: '/tmp/cfg' }).file).toBe('/tmp/cfg/systemd/user/renderswarm.service')
    expect(servicePaths({ platform: 'darwin', home: '/Users/ana' })).toEqual({ kind: 'launchd', file: '/Users/ana/Library/LaunchAgents/com.renderswarm.agent.plist', logFile: '/Users/ana/Library/Logs/renderswarm/agent.log' })
    expect(() => servicePaths({ platform: 'win32', home: 'C:\\Users\\ana' })).toThrow(/docs\/operations\.md \(Windows: Task Scheduler or NSSM\)/)
  })

  it('enables with systemctl --user (Linux) or launchctl bootstrap into the user\'s GUI domain (macOS)', () => {
    const linux = planService({ platform: 'linux', home: '/h' }, spec(), 1000)
    expect(linux.enable.map(shellLine)).toEqual(['systemctl --user daemon-reload', 'systemctl --user enable --now renderswarm'])
    expect(linux.disable.map(shellLine)).toEqual(['systemctl --user disable --now renderswarm'])
    const mac = planService({ platform: 'darwin', home: '/Users/Ana Lopez' }, spec(), 501)
    expect(mac.enable.map(shellLine)).toEqual(["launchctl bootstrap gui/501 '/Users/Ana Lopez/Library/LaunchAgents/com.renderswarm.agent.plist'"])
    expect(mac.disable.map(shellLine)).toEqual(['launchctl bootout gui/501/com.renderswarm.agent'])
    expect(shellLine(['echo', "it's"])).toBe("echo 'it'\\''s'")
  })
})

describe.skipIf(process.platform !== 'linux')('renderswarm service (the command, HOME in a temp dir)', () => {
  let home = ''
  beforeAll(() => { home = mkdtempSync(path.join(os.tmpdir(), 'rs-service-')) })
  afterAll(() => { if (home !== '') rmSync(home, { recursive: true, force: true }) })
  const cli = async (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    const env: Record<string, string | undefined> = { ...process.env, HOME: home }
    delete env.XDG_CONFIG_HOME
    delete env.XDG_STATE_HOME
    return await promisify(execFile)(process.execPath, [BIN, 'service', ...args], { env, timeout: 60_000 }).then((r) => ({ code: 0, ...r }), (e: { code: number; stdout: string; stderr: string }) => e)
  }

  it('--dry-run prints the unit and the commands and writes nothing; install writes what it prints; uninstall removes it', async () => {
    const unit = path.join(home, '.config', 'systemd', 'user', 'renderswarm.service')
    const stateDir = path.join(home, 'render state')
    const dry = await cli(['install', '--dry-run', '--state-dir', stateDir, '--', '--when', 'idle', '--slots', '2'])
    expect(dry.code, dry.stderr).toBe(0)
    expect(dry.stdout).toContain(`would write ${unit}:`)
    expect(dry.stdout).toContain('  systemctl --user enable --now renderswarm')
    expect(existsSync(unit)).toBe(false)
    const exec = systemdSplit(/^ExecStart=(.*)$/m.exec(dry.stdout)![1]!)
    expect(exec).toEqual([process.execPath, BIN, 'agent', '--state-dir', stateDir, '--when', 'idle', '--slots', '2'])

    const inst = await cli(['install', '--state-dir', stateDir, '--', '--when', 'idle', '--slots', '2'])
    expect(inst.code, inst.stderr).toBe(0)
    const written = readFileSync(unit, 'utf8')
    expect(inst.stdout).toContain(`wrote ${unit}:\n\n${written}`)
    expect(inst.stdout).toMatch(/start it now and at every login with:\n {2}systemctl --user daemon-reload\n {2}systemctl --user enable --now renderswarm\n/)
    expect(written).toBe(dry.stdout.slice(dry.stdout.indexOf(':\n\n') + 3, dry.stdout.indexOf('\nthen start it with:')))

    const st = await cli(['status', '--json', '--state-dir', stateDir])
    expect(JSON.parse(st.stdout)).toMatchObject({ kind: 'systemd', file: unit, installed: true, stateDir, agentApi: false, ownsStateDir: true })

    const bad = await cli(['install', 'stray'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/agent flags go after "--"/)

    const un = await cli(['uninstall'])
    expect(un.code, un.stderr).toBe(0)
    expect(un.stdout).toContain(`removed ${unit}`)
    expect(existsSync(unit)).toBe(false)
    expect(JSON.parse((await cli(['status', '--json'])).stdout)).toMatchObject({ installed: false, state: 'not installed' })
  }, 120_000)
})
