/**
 * Farm members on loopback for the cluster tests: real FarmNodes with farm-signed certificates,
 * started and remembered so that `stopMembers()` (in afterEach) stops every one.
 *
 *   afterEach(stopMembers)
 *   const { w, c } = await memberPair()        // a worker and a coordinator of a new farm, members of each other
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { FarmNode } from '../../agent/node.ts'
import { generateFarmKey, issueCertificate, type FarmSecrets } from '../../protocol/farm-key.ts'
import { waitFor } from './wait.ts'

const started: FarmNode[] = []

export async function stopMembers (): Promise<void> {
  await Promise.all(started.splice(0).map((n) => n.stop().catch(() => {})))
}

/** A member of `farm` listening on 127.0.0.1, heartbeats every 250 ms. */
export async function makeMember (farm: FarmSecrets, name: string): Promise<FarmNode> {
  const privateKey = await generateKeyPair('Ed25519')
  const peerId = peerIdFromPrivateKey(privateKey).toString()
  const node = new FarmNode({ privateKey, name, listen: ['/ip4/127.0.0.1/tcp/0'], farm: { publicKey: farm.publicKey, psk: farm.psk }, heartbeatMs: 250, certificate: issueCertificate(farm, { peerId, name, issuedAtMs: Date.now() }) })
  await node.start()
  started.push(node)
  return node
}

/** A worker and a coordinator of one new farm, members of each other. */
export async function memberPair (): Promise<{ w: FarmNode; c: FarmNode }> {
  const farm = generateFarmKey()
  const w = await makeMember(farm, 'worker')
  const c = await makeMember(farm, 'coordinator')
  await c.dial(w.addrs()[0]!)
  await waitFor(() => c.isMember(w.peerId.toString()) && w.isMember(c.peerId.toString()) ? true : undefined, 5000, 'membership')
  return { w, c }
}
