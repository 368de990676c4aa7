import * as path from 'node:path';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { compareDigests, digestPath, digestTree, type Digest, type DiffKind, type HashName } from '../lib/digest';
import { comparePosition } from '../lib/entry';
import type { Root } from '../lib/roots';
import { verifySubject } from '../lib/subjects';
import { readState } from '../lib/state-bucket';
import { askReplayer } from '../lib/verify-protocol';
import { DEFAULTS } from '../lib/settings';

/** A difference that held still: the standby had applied past the primary's read and still differed. */
export interface Difference { root: string; path: string; kind: DiffKind }

/** What one comparison found. */
export interface Comparison {
  differences: Difference[];
  /** Objects that changed on the primary in every round: in flight, so never compared. */
  unsettled: { root: string; path: string }[];
}

export interface VerifierOptions {
  nc: NatsConnection;
  kv: KV;
  stream: string;
  /** The standby compared against (its key in the state bucket): only its replayer answers. */
  standby: string;
  roots: Root[];
  hash: HashName;
  excluded: (rel: string) => boolean;
  /** Rounds a candidate gets to settle before it is called unsettled. */
  rounds: number;
  /** How long to wait for the standby to apply what the agents had journaled. */
  catchUpMs: number;
}

const HEARTBEAT_MS = DEFAULTS.verify.heartbeatWaitMs;

/**
 * Compares the primary's roots with the standby's, both hashed at once on their own hosts.
 * A first pass finds candidates; each is then read again on the primary, the standby is
 * let apply past what every agent had journaled by then, and it is compared once more.
 * Only a difference still there, with the primary's object unchanged meanwhile, counts.
 */
export async function compareRoots(o: VerifierOptions): Promise<Comparison> {
  let candidates: { root: Root; path: string }[] = [];
  // The journals the standby knows, from its answers: whose agents' positions it must reach.
  const journals = new Set<string>();
  for (const root of o.roots) {
    const [primary, standby] = await Promise.all([primaryTree(root, o), standbyTree(root, o, journals)]);
    for (const [p, d] of primary) if (compareDigests(d, standby.get(p)) !== undefined) candidates.push({ root, path: p });
    for (const p of standby.keys()) if (!primary.has(p) && !excludedWithin(p, o.excluded)) candidates.push({ root, path: p });
  }
  const differences: Difference[] = [];
  for (let round = 0; round < o.rounds && candidates.length > 0; round++) {
    const first = await primaryDigests(candidates);
    await new Promise((r) => setTimeout(r, HEARTBEAT_MS));
    const caughtUp = await waitForStandby(o, journals);
    const standby = new Map<string, Digest | undefined>();
    for (const root of o.roots) {
      const paths = candidates.filter((c) => c.root === root).map((c) => c.path);
      if (paths.length === 0) continue;
      const got = await askReplayer(o.nc, verifySubject(o.stream, o.standby), { kind: 'digest', root: root.name, hash: o.hash, paths });
      for (const d of got.digests) standby.set(key(root, d.p), d);
    }
    const second = await primaryDigests(candidates);
    const next: typeof candidates = [];
    candidates.forEach((c, i) => {
      if (compareDigests(first[i], second[i]) !== undefined) {
        next.push(c); // changed while we looked: in flight, try again
        return;
      }
      const kind = compareDigests(second[i], standby.get(key(c.root, c.path)));
      if (kind === undefined) return;
      // Not applied past our read yet: it may still be in flight, so it is not called a difference.
      if (!caughtUp) next.push(c);
      else differences.push({ root: c.root.name, path: c.path, kind });
    });
    candidates = next;
  }
  return { differences, unsettled: candidates.map((c) => ({ root: c.root.name, path: c.path })) };

  async function primaryDigests(list: { root: Root; path: string }[]): Promise<(Digest | undefined)[]> {
    return Promise.all(list.map((c) => digestPath(path.join(c.root.dir, ...c.path.split('/')), c.path, o.hash)));
  }
}

async function primaryTree(root: Root, o: VerifierOptions): Promise<Map<string, Digest>> {
  const out = new Map<string, Digest>();
  for await (const d of digestTree(root.dir, o.hash, (rel) => o.excluded(rel))) out.set(d.p, d);
  return out;
}

async function standbyTree(root: Root, o: VerifierOptions, journals: Set<string>): Promise<Map<string, Digest>> {
  const got = await askReplayer(o.nc, verifySubject(o.stream, o.standby), { kind: 'manifest', root: root.name, hash: o.hash });
  for (const name of Object.keys(got.applied)) journals.add(name);
  return new Map(got.digests.map((d) => [d.p, d]));
}

/**
 * Waits (bounded) until the standby has applied what each agent had journaled: what live
 * agents spooled, what dead ones shipped. False when it had not within `catchUpMs`. The
 * positions are this standby's own, asked of its replayer: `applied.<journal>` is whichever
 * standby committed last.
 */
async function waitForStandby(o: VerifierOptions, journals: ReadonlySet<string>): Promise<boolean> {
  const targets = new Map<string, { e: number; s: number }>();
  // Direct reads of known keys: listing the bucket's keys (an ordered consumer) was seen to stall for minutes on a busy server.
  for (const name of journals) {
    const a = await readState(o.kv, 'agent', name).catch(() => undefined);
    if (a === undefined) continue;
    const live = Date.now() - a.time < DEFAULTS.verify.liveAgentMs;
    targets.set(name, live ? { e: a.epoch, s: a.appended } : { e: a.acked.epoch, s: a.acked.seq });
  }
  const deadline = Date.now() + o.catchUpMs;
  for (const [name, target] of targets) {
    if (target.s === 0) continue;
    for (;;) {
      const applied = (await standbyPositions(o.nc, verifySubject(o.stream, o.standby), o.roots[0].name, o.hash).catch(() => undefined))?.[name];
      if (applied !== undefined && comparePosition(applied, target) >= 0) break;
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, DEFAULTS.verify.pollMs));
    }
  }
  return true;
}

/** What the standby answering on `subject` has applied, by journal: a digest request for no paths answers only that. */
export async function standbyPositions(nc: NatsConnection, subject: string, root: string, hash: HashName): Promise<Record<string, { e: number; s: number }>> {
  return (await askReplayer(nc, subject, { kind: 'digest', root, hash, paths: [] })).applied;
}

function key(root: Root, p: string): string {
  return `${root.name}\0${p}`;
}

/** Whether a standby path lies in a part of the tree the primary leaves out. */
function excludedWithin(p: string, excluded: (rel: string) => boolean): boolean {
  for (let q = p; ; q = q.slice(0, q.lastIndexOf('/'))) {
    if (excluded(q)) return true;
    if (!q.includes('/')) return false;
  }
}
