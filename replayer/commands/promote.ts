import * as fs from 'node:fs';
import * as os from 'node:os';
import { rollBack } from '../checkpoints/rollback';
import { jetstreamManager } from '@nats-io/jetstream';
import { decodeEntry } from '../../lib/codec';
import { lastEntry } from '../../lib/batch';
import { positionLabel } from '../../lib/entry';
import { connectNats, openStateKv, stateKeys } from '../../lib/nats';
import { loadVerifier } from '../../lib/signing';
import { journalSubject } from '../../lib/subjects';
import { parseStateKey, readState, writeState } from '../../lib/state-bucket';
import { FenceStore, type Fence } from '../fence';
import { Replayer, type ReplaySummary } from '../replayer';
import { setAside, type SetAside } from '../set-aside';
import { PositionStore, type JournalPos } from '../state';
import { lockState } from '../state-lock';
import { journalFilter, requireState } from './standby-flags';
import { common, parse, type CommonOptions } from '../../lib/cli-options';
import { DEFAULTS, standbyName } from '../../lib/settings';

export const usage = `understudy promote --root name=/abs/dir … --state DIR [--nats URL] [--name NAME] [--standby NAME] [--verify-key FILE …]
                  [--at-checkpoint NAME|latest] [--json]

Makes this standby the primary: applies everything it can still get from the stream,
stops, fences each journal at the position it reached (later entries from the old
primary are refused as split brain, never merged), and reports the last applied
position, what is known to be missing (in doubt), and how long it took.
The fences go to the state bucket under this standby's name (--standby, as for replay:
UNDERSTUDY_STANDBY, else the host's name): every other standby following the stream
refuses the old primary's entries past them too, and status says who was promoted.
--at-checkpoint takes over at a checkpoint this standby reached instead (\`understudy checkpoints\`;
latest: the newest): the last state that was consistent across every process of the primary.
Every change applied after it is set aside under --state/set-aside/<time>/ (moved there, with a
manifest.json naming each; kept, not lost), the roots and replicas are rolled back in place,
the positions move to the checkpoint's cut, and the fences are set there.
Stop the running replayer first.`;

interface JournalReport {
  journal: string;
  applied?: string;
  applied_entry_time?: string;
  stream_last?: string;
  in_doubt: number;
  in_doubt_why?: string;
  fence?: Fence;
  /** Transactions of this journal whose end never came: none of their entries applied, all kept in `file`. */
  set_aside?: SetAside[];
}

/** `understudy promote`. */
export async function promote(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parse(argv, { json: { type: 'boolean' }, 'verify-key': { type: 'string', multiple: true }, standby: { type: 'string' }, 'at-checkpoint': { type: 'string' } });
  if (values.help === true) {
    console.log(usage);
    return 0;
  }
  requireState(values.state, env, 'promote');
  const parsed = common(values, env, true);
  const o = { ...parsed, name: journalFilter(values.name, parsed.name, env, (line) => console.error(`understudy promote: ${line}`)), standby: standbyName(env, values.standby) };
  const started = Date.now();
  // Held from the drain to the fence: a replayer started meanwhile would apply past the fence.
  const lock = lockState(o.stateDir, 'promote');
  try {
    return await promoteLocked(o, values.json === true, values['verify-key'], env, started, values['at-checkpoint']);
  } finally {
    lock.release();
  }
}

/** Drains, fences and reports, with the state directory locked. */
async function promoteLocked(o: CommonOptions & { standby: string }, json: boolean, verifyKeys: string[] | undefined, env: NodeJS.ProcessEnv, started: number, atCheckpoint?: string): Promise<number> {
  const keyFiles = verifyKeys ?? (env.UNDERSTUDY_VERIFY_KEYS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const log = (line: string): void => console.error(`understudy promote: ${line}`);

  let drained: ReplaySummary | undefined;
  let stoppedBy: string | undefined;
  const replayer = new Replayer({ ...o, drain: true, stateLocked: true, promoting: true, log, verifier: keyFiles.length > 0 ? loadVerifier(keyFiles) : undefined });
  try {
    drained = await replayer.run();
  } catch (err) {
    // Promotion goes on from what this standby has: that is the point of a standby.
    stoppedBy = (err as Error).message;
    log(`could not apply everything: ${stoppedBy}`);
  }
  // A transaction whose end never came is applied by no part: its entries are kept, not lost.
  const asides: SetAside[] = setAside(o.stateDir, replayer.unfinished());
  // After the drain: it may reach the checkpoint named, or a newer one for "latest".
  const rolled = atCheckpoint === undefined ? undefined : rollBack(o.stateDir, new Map(o.roots.map((r) => [r.name, fs.realpathSync(r.dir)])), atCheckpoint);
  if (rolled !== undefined) log(`rolled back to checkpoint ${rolled.checkpoint.name}: ${rolled.changes} later change(s) set aside in ${rolled.dir}`);
  if (rolled !== undefined && rolled.outside.length > 0) log(`journals not in checkpoint ${rolled.checkpoint.name} (${rolled.outside.join(', ')}): their changes after it were set aside too; their positions are left where they were`);
  const store = new PositionStore(o.stateDir);
  const applied = store.positions.journals;
  store.close();
  const remote = await remoteView(o, Object.keys(applied)).catch((err: Error) => {
    log(`NATS is not reachable (${err.message}); what the primary had beyond this point is unknown`);
    return undefined;
  });
  const fences = new FenceStore(o.stateDir);
  const names = [...new Set([...Object.keys(applied), ...(remote?.names ?? [])])].filter((n) => o.name === undefined || n === o.name).sort();
  const reports: JournalReport[] = [];
  for (const name of names) {
    const pos: JournalPos | undefined = applied[name];
    const fence = fences.fence(name, pos ?? { e: 0, s: 0 }, os.hostname(), o.standby);
    const r = remote?.journals.get(name);
    const newest = Math.max(r?.agentAppended ?? 0, r?.streamLast?.s ?? 0);
    const inDoubt = Math.max(0, newest - (pos?.s ?? 0));
    reports.push({
      journal: name,
      applied: pos === undefined ? undefined : positionLabel(pos),
      applied_entry_time: pos === undefined ? undefined : new Date(pos.t).toISOString(),
      stream_last: r?.streamLast === undefined ? undefined : positionLabel(r.streamLast),
      in_doubt: inDoubt,
      in_doubt_why: inDoubt === 0 ? undefined : `entries ${(pos?.s ?? 0) + 1}..${newest} were ${rolled !== undefined ? `after checkpoint ${rolled.checkpoint.name} (what of them was applied is set aside)` : r?.streamLast !== undefined && r.streamLast.s >= newest ? 'in the stream but could not be applied' : 'reported by the primary but never reached the stream'}`,
      fence,
      ...(asides.some((a) => a.journal === name) ? { set_aside: asides.filter((a) => a.journal === name) } : {}),
    });
    await remote?.publishFence(name, fence);
  }
  await remote?.close();
  const took = (Date.now() - started) / 1000;
  if (json) {
    const at = rolled === undefined ? {} : { at_checkpoint: { name: rolled.checkpoint.name, id: rolled.checkpoint.id, time: new Date(rolled.checkpoint.time).toISOString(), set_aside: rolled.changes, set_aside_dir: rolled.dir } };
    console.log(JSON.stringify({ promoted: true, standby: o.standby, took_seconds: took, applied_now: drained?.applied ?? 0, stopped_by: stoppedBy, ...at, journals: reports }, null, 2));
  } else {
    console.log(`promoted in ${took.toFixed(1)} s; applied ${drained?.applied ?? 0} more entries${stoppedBy ? ` before stopping: ${stoppedBy}` : ''}`);
    if (rolled !== undefined) console.log(`at checkpoint ${rolled.checkpoint.name} (taken ${new Date(rolled.checkpoint.time).toISOString()}): ${rolled.changes} later change(s) set aside in ${rolled.dir} (manifest.json lists them)`);
    for (const r of reports) {
      console.log(`journal ${r.journal}: last applied ${r.applied ?? 'nothing'}${r.applied_entry_time ? ` (written on the primary at ${r.applied_entry_time})` : ''}; ` +
        `${r.in_doubt === 0 ? 'nothing known to be missing' : `IN DOUBT: ${r.in_doubt} entries (${r.in_doubt_why})`}; fenced at ${r.fence ? positionLabel(r.fence) : '-'}`);
      for (const a of r.set_aside ?? []) console.log(`journal ${r.journal}: transaction ${a.ids.join(', ')} never ended on the primary: its ${a.entries} entries are set aside in ${a.file}, none of them applied`);
    }
    if (reports.length === 0) console.log('no journal has been applied here; nothing to fence');
    else console.log(`standby ${o.standby} is the primary now${remote === undefined ? '; the fences are here only: other standbys and the old primary learn of them once promote runs again with NATS reachable' : ': every other standby refuses the old primary\'s entries past these fences'}`);
  }
  return 0;
}

/** What NATS knows: the primary's last heartbeat and the stream's last entry, per journal; and a way to publish fences. */
async function remoteView(o: CommonOptions, known: string[]) {
  const nc = await connectNats(o.nats, 'understudy-promote', { maxReconnectAttempts: 0, timeout: DEFAULTS.nats.promoteConnectMs });
  const kv = await openStateKv(nc, o.stream);
  const jsm = await jetstreamManager(nc);
  const names = new Set(known);
  // One request for the bucket's keys: kv.keys() follows the bucket and was seen to stall beside busy agents.
  for (const k of await stateKeys(jsm, o.stream)) {
    const key = parseStateKey(k);
    if (key?.kind === 'agent') names.add(key.name);
  }
  const journals = new Map<string, { agentAppended?: number; streamLast?: { e: number; s: number } }>();
  for (const name of names) {
    const beat = await readState(kv, 'agent', name);
    const last = await jsm.streams.getMessage(o.stream, { last_by_subj: journalSubject(o.stream, name) }).catch(() => null);
    const head = last === null ? undefined : decodeEntry(lastEntry(last.data)).header;
    journals.set(name, {
      agentAppended: beat?.appended,
      streamLast: head === undefined ? undefined : { e: head.e, s: head.s },
    });
  }
  return {
    names: [...names],
    journals,
    publishFence: async (name: string, fence: Fence) => {
      await writeState(kv, 'fence', name, fence).catch(() => undefined);
    },
    close: () => nc.close(),
  };
}
