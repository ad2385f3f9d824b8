/**
 * A misbehaving farm member for the flood test (test/e2e/farm-flood.test.ts): it joins the farm
 * with a real invite (so it holds the PSK and a farm-signed certificate), meets the target
 * members, then opens request streams to them as fast as it can and holds them open, for a
 * bounded time. Run inside a test host's namespace:
 *
 *   ip netns exec NS node bin/run-ts.js test/helpers/flooder.ts '{"token":"…","listen":"/ip4/10.1.2.4/tcp/0","targets":["12D3…"],"seconds":20,"go":"/tmp/…/go"}'
 *
 * Prints one line per event on stdout: `joined <peerId>`, `members <n>`, `flooding`, `closed <target> <ms since flooding>`,
 * and last `result {…}` (JSON: per target, streams opened and answered before the cut-off,
 * refused attempts, and answers after the cut-off, which must be none).
 */
import { existsSync } from 'node:fs'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Connection, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { FarmNode } from '../../agent/node.ts'
import { parseInvite } from '../../protocol/farm-key.ts'
import { PROTOCOLS } from '../../protocol/ids.ts'

interface Args { token: string; listen: string; targets: string[]; seconds: number; /** Flooding starts once this file exists (waits up to 3 min). */ go?: string }
const args = JSON.parse(process.argv[2] ?? '{}') as Args
const say = (line: string): void => { process.stdout.write(`${line}\n`) }
const sleep = async (ms: number): Promise<void> => { await new Promise((r) => setTimeout(r, ms)) }
const enc = new TextEncoder()

/** Open, and its stream muxer too. */
const usable = (c: Connection): boolean => c.status === 'open' && (c as unknown as { muxer?: { status: string } }).muxer?.status === 'open'

interface Tally { opened: number; answered: number; refused: number; closedAtMs?: number; attemptsAfter: number; answeredAfter: number; /** The first few distinct reasons attempts failed, for the test's failure message. */ errors: string[] }

async function main (): Promise<void> {
  const invite = parseInvite(args.token, Date.now())
  const node = new FarmNode({ privateKey: await generateKeyPair('Ed25519'), farm: { publicKey: invite.publicKey, psk: new Uint8Array(Buffer.from(invite.psk, 'base64')) }, certificate: undefined, name: 'flooder', listen: [args.listen], heartbeatMs: 1000 })
  await node.start()
  await node.join(args.token, invite.bootstrap)
  say(`joined ${node.peerId.toString()}`)
  // Peer exchange introduces the other members; bounded wait.
  for (let i = 0; i < 300 && !args.targets.every((t) => node.isMember(t)); i++) await sleep(100)
  if (!args.targets.every((t) => node.isMember(t))) throw new Error(`not a member of every target after 30 s: ${args.targets.filter((t) => !node.isMember(t)).join(', ')}`)
  say(`members ${node.list().length}`)
  for (let i = 0; i < 1800 && args.go !== undefined && !existsSync(args.go); i++) await sleep(100)
  const libp2p = (node as unknown as { libp2p: { getConnections: () => Connection[]; dial: (a: unknown, o?: Record<string, unknown>) => Promise<Connection> } }).libp2p
  const started = Date.now()
  const until = started + args.seconds * 1000
  say('flooding')
  const tallies = await Promise.all(args.targets.map(async (target): Promise<Tally> => {
    const t: Tally = { opened: 0, answered: 0, refused: 0, attemptsAfter: 0, answeredAfter: 0, errors: [] }
    const held: Stream[] = []
    const addrs = node.list().find((m) => m.peerId === target)?.addrs ?? []
    // One request on a new stream, left open (never closed from this side): each holds a slot at
    // the target. A slow target (a loaded machine) must not free the slot: opening waits up to
    // 10 s, and a reply not yet come is not waited for beyond 2 s, nor is its stream let go.
    const once = async (): Promise<void> => {
      // A connection the target closed can still read 'open' for a moment with its muxer already
      // closed (the socket's end is a later event): that one counts as closed too.
      let conn = libp2p.getConnections().find((c) => c.remotePeer.toString() === target && usable(c))
      if (conn === undefined && t.closedAtMs === undefined) { t.closedAtMs = Date.now() - started; say(`closed ${target} ${t.closedAtMs}`) }
      const after = t.closedAtMs !== undefined
      if (after) t.attemptsAfter++
      try {
        if (conn === undefined) conn = await libp2p.dial(multiaddr(addrs[0]!.includes('/p2p/') ? addrs[0]! : `${addrs[0]!}/p2p/${target}`), { signal: AbortSignal.timeout(2000) })
        const s = await conn.newStream(PROTOCOLS.submit, { maxOutboundStreams: 10_000, signal: AbortSignal.timeout(10_000) })
        if (!after) t.opened++
        held.push(s)
        const lp = lpStream(s)
        await lp.write(enc.encode(JSON.stringify({ type: 'get-job', jobId: `flood-${t.opened}` })), { signal: AbortSignal.timeout(10_000) })
        const reply = lp.read()
        reply.catch(() => {})
        const answered = await Promise.race([reply.then(() => true), sleep(2000).then(() => false)])
        if (answered && after) t.answeredAfter++
        else if (answered) t.answered++
      } catch (err) {
        t.refused++
        const m = String((err as Error | undefined)?.message ?? err).slice(0, 120)
        if (t.errors.length < 5 && !t.errors.includes(m)) t.errors.push(m)
      }
    }
    // 16 at a time, as fast as they go; bounded in time and count.
    for (let round = 0; round < 5000 && Date.now() < until; round++) {
      await Promise.all(Array.from({ length: 16 }, once))
      // Attempts that fail at once settle in microtasks only: yield, or the socket events that
      // close the connection (and every timer) would wait until the loop ends.
      await new Promise((resolve) => setImmediate(resolve))
      if (t.closedAtMs !== undefined) await sleep(200) // cut off: keep knocking, more slowly
    }
    for (const s of held) { try { s.abort(new Error('done')) } catch { /* gone */ } }
    return t
  }))
  say(`result ${JSON.stringify(Object.fromEntries(args.targets.map((p, i) => [p, tallies[i]])))}`)
  await node.stop().catch(() => {})
}

const watchdog = setTimeout(() => { say('error watchdog'); process.exit(3) }, (args.seconds + 300) * 1000)
main().then(() => { clearTimeout(watchdog); process.exit(0) }, (err: unknown) => { say(`error ${(err as Error).message}`); process.exit(1) })
