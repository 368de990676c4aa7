import * as path from 'node:path';
import { HASHES, type HashName } from '../../lib/digest';
import { SettingsError } from '../../lib/errors';
import { excludeMatcher } from '../../lib/exclude';
import { comparePosition } from '../../lib/entry';
import { common, parse } from '../../lib/cli-options';
import { verifySubject } from '../../lib/subjects';
import { writeState, type VerifyReport } from '../../lib/state-bucket';
import type { SettledNotice } from '../../lib/verify-protocol';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Root } from '../../lib/roots';
import { agentSettings, DEFAULTS } from '../../lib/settings';
import { openSession, openState } from '../session';
import { Snapshotter } from '../snapshot';
import { compareRoots, standbyPositions, type Comparison, type Difference } from '../verifier';
import { whichStandby } from './which-standby';

export const usage = `understudy verify --root name=/abs/dir … [--standby NAME] [--name NAME] [--repair] [--json] [--hash xxh64|sha256]

Compares the primary's roots (run it on the primary) with the standby's, through the
running replayer: types, permission bits, link targets, sizes and content hashes, each side
hashing its own tree. A difference counts only if it is still there once the standby has
applied past the moment the primary read the object; objects that change throughout are
listed as unsettled, not as differences. Exits 1 when there are differences, 0 when equal.
--repair journals what makes the standby equal (snapshots, removals), waits until they are
applied, and verifies again. --name names the repair journal and the report (default "verify").
--standby names the standby to compare with; without it, the one standby registered in the
state bucket (several registered: name one).`;

/** `understudy verify`. */
export async function verify(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parse(argv, {
    repair: { type: 'boolean' }, json: { type: 'boolean' }, hash: { type: 'string' }, rounds: { type: 'string' }, standby: { type: 'string' },
  });
  if (values.help === true) {
    console.log(usage);
    return 0;
  }
  const o = common(values, env, true);
  const hash = (values.hash ?? DEFAULTS.verify.hash) as HashName;
  if (!HASHES.includes(hash)) throw new SettingsError(`--hash ${hash} is not one of ${HASHES.join(', ')}`);
  const rounds = Number(values.rounds ?? DEFAULTS.verify.rounds);
  if (!Number.isSafeInteger(rounds) || rounds < 1) throw new SettingsError(`--rounds ${values.rounds} is not a positive whole number`);
  const name = o.name ?? 'verify';
  const exclude = agentSettings({ ...env, UNDERSTUDY_ROOTS: o.roots.map((r) => `${r.name}=${r.dir}`).join(',') }, undefined).exclude;
  const { nc, kv } = await openState(o.nats, o.stream, `understudy-verify:${name}`);
  const startedAt = Date.now();
  try {
    const standby = await whichStandby(nc, kv, o.stream, values.standby);
    const compare = (): Promise<Comparison> => compareRoots({
      nc, kv, stream: o.stream, standby, roots: o.roots, hash, excluded: excludeMatcher(exclude), rounds, catchUpMs: DEFAULTS.verify.catchUpMs,
    });
    let found = await compare();
    let repaired = 0;
    let before: Difference[] = [];
    if (values.repair === true && found.differences.length > 0) {
      before = found.differences;
      repaired = await repair(found.differences, o.roots, { nats: o.nats, stream: o.stream, roots: o.roots, name }, env, { nc, subject: verifySubject(o.stream, standby), hash });
      found = await compare();
    }
    const report: VerifyReport = {
      time: Date.now(), roots: o.roots.map((r) => r.name), equal: found.differences.length === 0,
      differences: before.length > 0 ? before.length : found.differences.length, repaired, unsettled: found.unsettled.length, standby,
    };
    await writeState(kv, 'verify', name, report).catch(() => undefined);
    // Equal: what the standby doubted before this verify began is settled (its status stops saying "may differ").
    if (report.equal) await settle(nc, verifySubject(o.stream, standby), report.roots, startedAt, found.unsettled.map((u) => `${u.root}/${u.path}`));
    if (values.json === true) {
      console.log(JSON.stringify({ ...report, found: before.length > 0 ? before : found.differences, remaining: found.differences, unsettledPaths: found.unsettled }, null, 2));
    } else {
      for (const d of before) console.log(`${d.kind.padEnd(8)} ${d.root}/${d.path}  (repaired)`);
      for (const d of found.differences) console.log(`${d.kind.padEnd(8)} ${d.root}/${d.path}`);
      for (const u of found.unsettled) console.log(`changing ${u.root}/${u.path}  (in flight in every round: changed on the primary, or not yet applied on the standby; not compared)`);
      console.log(report.equal
        ? `equal${repaired > 0 ? ` after repairing ${repaired} object(s)` : ''}${found.unsettled.length > 0 ? ` (${found.unsettled.length} in flight throughout)` : ''}`
        : `${found.differences.length} difference(s)`);
    }
    return report.equal ? 0 : 1;
  } finally {
    await nc.close();
  }
}

/** Tells the standby's replayer (only it) that `roots` were found equal, so what it doubted before `since` is settled; best effort. */
async function settle(nc: NatsConnection, subject: string, roots: string[], since: number, unsettled: string[]): Promise<void> {
  const notice: SettledNotice = { kind: 'settled', roots, since, unsettled };
  await nc.request(subject, JSON.stringify(notice), { timeout: DEFAULTS.verify.settleNoticeMs }).catch(() => undefined);
}

/**
 * Journals what makes the standby equal: the primary's objects as they are now (a removal where
 * the primary has nothing), each stamped with its read time so a newer change still wins. Then
 * waits until the standby's replayer (the one answering on `standby.subject`) has applied them.
 * Returns how many objects were sent.
 */
async function repair(diffs: Difference[], roots: Root[], s: Parameters<typeof openSession>[0], env: NodeJS.ProcessEnv,
  standby: { nc: NatsConnection; subject: string; hash: HashName }): Promise<number> {
  const session = openSession(s, env);
  try {
    const snap = new Snapshotter(session.journal, { databases: true });
    const sorted = [...diffs].sort((a, b) => (a.root + '\0' + a.path < b.root + '\0' + b.path ? -1 : 1));
    const removed: string[] = [];
    let n = 0;
    for (const d of sorted) {
      const root = roots.find((r) => r.name === d.root)!;
      // An extra directory's removal takes what is below it.
      if (removed.some((q) => `${d.root}/${d.path}`.startsWith(`${q}/`))) continue;
      const r = snap.snapshot(d.root, d.path, path.join(root.dir, ...d.path.split('/')), true);
      // What was below an extra directory, or one the primary now has a file for, went with it.
      if (r.kind === 'removed' || (d.kind === 'type' && r.kind !== 'dir')) removed.push(`${d.root}/${d.path}`);
      n++;
    }
    if (!(await session.shipped(DEFAULTS.verify.repairMs))) throw new Error(`repair entries are not in JetStream after ${DEFAULTS.verify.repairMs / 1000} s; they stay spooled in ${session.journal.dir}`);
    const target = { e: session.journal.epoch, s: session.journal.lastSeq };
    const deadline = Date.now() + DEFAULTS.verify.repairMs;
    for (;;) {
      const applied = (await standbyPositions(standby.nc, standby.subject, roots[0].name, standby.hash).catch(() => undefined))?.[s.name];
      if (applied !== undefined && comparePosition(applied, target) >= 0) return n;
      if (Date.now() > deadline) throw new Error(`the standby has not applied the repair (journal "${s.name}" up to ${target.s}) after ${DEFAULTS.verify.repairMs / 1000} s`);
      await new Promise((r) => setTimeout(r, DEFAULTS.verify.pollMs));
    }
  } finally {
    session.close();
  }
}
