/**
 * Test hosts in network namespaces: a bridge in a namespace of its own and N hosts joined to it
 * by veth pairs. Nothing is attached to the host's interfaces. Needs root and iproute2.
 *
 *   const lan = createLan('rs1234', 3, '10.77.5')   // hosts 10.77.5.1 … 10.77.5.3
 *   …; destroyLan(lan)
 */
import { execFileSync } from 'node:child_process'

export interface Lan { bridge: string; hosts: Array<{ ns: string; ip: string }> }

export function ip (...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

export function canUseNetns (): boolean {
  if (process.getuid?.() !== 0) return false
  try { ip('-V'); return true } catch { return false }
}

export function createLan (prefix: string, count: number, subnet: string): Lan {
  const lan: Lan = { bridge: `${prefix}br`, hosts: [] }
  try {
    ip('netns', 'add', lan.bridge)
    ip('netns', 'exec', lan.bridge, 'ip', 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0')
    ip('netns', 'exec', lan.bridge, 'ip', 'link', 'set', 'br0', 'up')
    for (let i = 0; i < count; i++) {
      const host = { ns: `${prefix}n${i + 1}`, ip: `${subnet}.${i + 1}` }
      ip('netns', 'add', host.ns)
      lan.hosts.push(host)
      ip('netns', 'exec', host.ns, 'ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `vb${i}`)
      ip('netns', 'exec', host.ns, 'ip', 'link', 'set', `vb${i}`, 'netns', lan.bridge)
      ip('netns', 'exec', lan.bridge, 'ip', 'link', 'set', `vb${i}`, 'master', 'br0', 'up')
      ip('netns', 'exec', host.ns, 'ip', 'addr', 'add', `${host.ip}/24`, 'dev', 'eth0')
      ip('netns', 'exec', host.ns, 'ip', 'link', 'set', 'eth0', 'up')
      ip('netns', 'exec', host.ns, 'ip', 'link', 'set', 'lo', 'up')
    }
  } catch (err) {
    destroyLan(lan)
    throw err
  }
  return lan
}

export function destroyLan (lan: Lan): void {
  for (const ns of [...lan.hosts.map((h) => h.ns), lan.bridge]) {
    try { ip('netns', 'del', ns) } catch { /* already gone */ }
  }
}
