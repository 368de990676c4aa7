import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { digestPath, digestTree, HASHES, type Digest } from '../lib/digest';
import { type SettledNotice, type VerifyReply, type VerifyRequest } from '../lib/verify-protocol';
import { checkRelPath } from '../lib/confine';
import { isTempName } from './apply/temp-files';
import { resolveInRoot } from './safe-path';
import { DEFAULTS } from '../lib/settings';

const { digestsPerReply: DIGESTS_PER_REPLY, maxPaths: MAX_PATHS } = DEFAULTS.verify;

/**
 * Answers `understudy verify` on `subject` (this standby's, lib/subjects verifySubject) from its own tree: digests are computed here, in
 * parallel with the primary's, and only they cross the network, never the files. A request
 * is as hostile as an entry: only known roots, confined paths, and links are never followed.
 */
export function serveVerify(nc: NatsConnection, subject: string, roots: ReadonlyMap<string, string>,
  applied: () => Record<string, { e: number; s: number }>, log: (line: string) => void,
  settled: (n: SettledNotice) => void = () => undefined): Subscription {
  return nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err !== null) {
        // Not allowed to listen (NATS permissions): replaying goes on, verify cannot be served.
        log(`cannot serve "understudy verify" on ${subject}: ${err.message}`);
        return;
      }
      if (msg.reply === undefined) return;
      const reply = msg.reply;
      const send = (r: VerifyReply): void => nc.publish(reply, JSON.stringify(r));
      const notice = settledNotice(msg.string(), roots);
      if (notice !== undefined) {
        settled(notice);
        send({ done: true, applied: applied() });
        return;
      }
      answer(msg.string(), roots, send)
        .then(() => send({ done: true, applied: applied() }))
        .catch((e: Error) => send({ error: e.message }));
    },
  });
}

async function answer(text: string, roots: ReadonlyMap<string, string>, send: (r: VerifyReply) => void): Promise<void> {
  const req = parse(text);
  const dir = roots.get(req.root);
  if (dir === undefined) throw new Error(`this replayer has no root named "${req.root}"`);
  let batch: Digest[] = [];
  const add = (d: Digest): void => {
    batch.push(d);
    if (batch.length >= DIGESTS_PER_REPLY) {
      send({ digests: batch });
      batch = [];
    }
  };
  if (req.kind === 'manifest') {
    const isTemp = (_rel: string, name: string): boolean => isTempName(name);
    for await (const d of digestTree(dir, req.hash, isTemp)) add(d);
  } else {
    for (const p of req.paths) {
      let abs: string;
      try {
        abs = resolveInRoot(dir, p, false);
      } catch {
        continue; // not reachable without following a link, or a directory above is missing: absent
      }
      const d = await digestPath(abs, p, req.hash);
      if (d !== undefined) add(d);
    }
  }
  if (batch.length > 0) send({ digests: batch });
}

/** A verify's word that it found roots equal, when that is what `text` is (checked like any request). */
function settledNotice(text: string, roots: ReadonlyMap<string, string>): SettledNotice | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  const n = v as Partial<SettledNotice> | null;
  if (typeof n !== 'object' || n === null || n.kind !== 'settled') return undefined;
  if (!Array.isArray(n.roots) || !n.roots.every((r) => typeof r === 'string' && roots.has(r))) return undefined;
  if (typeof n.since !== 'number' || !Array.isArray(n.unsettled) || !n.unsettled.every((u) => typeof u === 'string')) return undefined;
  return { kind: 'settled', roots: n.roots, since: n.since, unsettled: n.unsettled };
}

function parse(text: string): VerifyRequest {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new Error('request is not JSON');
  }
  const r = v as Partial<Record<string, unknown>>;
  if (typeof v !== 'object' || v === null) throw new Error('request is not an object');
  if (typeof r.root !== 'string') throw new Error('request names no root');
  if (!(HASHES as readonly unknown[]).includes(r.hash)) throw new Error(`hash ${String(r.hash)} is not one of ${HASHES.join(', ')}`);
  if (r.kind === 'manifest') return v as VerifyRequest;
  if (r.kind !== 'digest' || !Array.isArray(r.paths) || r.paths.length > MAX_PATHS) throw new Error(`request is neither a manifest nor a digest of at most ${MAX_PATHS} paths`);
  for (const p of r.paths) checkRelPath(p as string);
  return v as VerifyRequest;
}

