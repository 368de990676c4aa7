import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { decodeEntry } from '../../lib/codec';
import { lastEntry } from '../../lib/batch';
import { openStateKv, stateKeys } from '../../lib/nats';
import { journalPrefix, journalSubject } from '../../lib/subjects';
import type { LostRange } from '../../lib/spool';
import { DEFAULTS } from '../../lib/settings';
import { committedIn, heldBytes, limitsOf } from '../slots/plan';
import { readSlots } from '../slots/slots';
import { collectPromotion, type PromotionStatus } from './promotion';
import { checkpointsView, type CheckpointsView } from './checkpoints';
import { parseStateKey, readState, type BaselineReport, type DoubtsReport, type VerifyReport, type WatchStatus } from '../../lib/state-bucket';

export interface JournalRow {
  journal: string;
  mode?: string;
  agent_epoch?: number;
  agent_last_seq?: number;
  agent_shipped_seq?: number;
  heartbeat_age_s?: number;
  /** Changes the agent could not journal because its spool was full: the standby differs by them. */
  dropped?: number;
  stream_last_seq?: number;
  applied_seq?: number;
  lag_entries?: number;
  lag_seconds?: number;
  /** Why the standby differs from the primary (not lag: waiting does not mend it), if it does. */
  differs?: string;
  /** Why the standby may differ: a process of this journal died without flushing its ending, and no verify has looked since. */
  may_differ?: string;
  /** Why the standby's disk failed a write or fsync: it holds nothing past `applied_seq` for sure. */
  standby_failing?: string;
  /** Why the stream refuses the agent's entries, and since when: they wait in its spool. */
  stream_refuses?: { reason: string; since: string };
}


/** How full the stream is: once at max_bytes it refuses entries (discard: new), and nothing trims it yet. */
export interface StreamUse {
  name: string;
  messages: number;
  bytes: number;
  max_bytes: number;
  used_pct: number;
  /** The stream's first sequence: what is below it was trimmed (every standby that counts had committed it). */
  first_seq: number;
  /** The stream's last sequence: a standby's committed position is measured against it. */
  last_seq: number;
}


/**
 * One standby as a replication slot (pg_stat_replication and pg_replication_slots side by side).
 * Lag is measured from its committed position: what it would apply again after a crash.
 */
export interface StandbyRow {
  /** Its key: the standby's name, or name.journal for a replayer of one journal. */
  name: string;
  journal?: string;
  host: string;
  /** streaming: at the stream's end; catching up: reading what is there; stopped: not heard from; lost: the stream and spools no longer keep what it lacks. */
  state: 'streaming' | 'catching up' | 'stopped' | 'lost';
  committed_seq: number;
  lag_entries: number;
  /** About: the stream's bytes after its committed position, from the stream's mean message size. */
  lag_bytes: number;
  /** How old its oldest unapplied entry is (0 when none). */
  lag_seconds: number;
  /** How many more bytes it may fall behind before it is lost (0 once lost; null: no limit). */
  safe_bytes: number | null;
  /** Its limits: bytes and seconds of lag (bytes null: no limit, on a stream without max_bytes). */
  max_lag_bytes: number | null;
  max_lag_seconds: number;
  last_active: string;
  /** Set when stopped or lost: when it was last heard from. */
  inactive_since?: string;
  /** Set when lost: since when and why. */
  lost?: { since: string; reason: string; by: string };
  /** A lost standby's recovery (baseline, then verify), as the agent doing it reports it. */
  rebase?: { state: string; step?: string; requested: string; by?: string; error?: string };
  /**
   * Transactions it stages, none of their entries applied until the end comes: per journal, the
   * ids, when the first began on the primary, how many entries; `may_never_end` once the
   * journal's agent has no live heartbeat (the primary died inside it).
   */
  staging?: { journal: string; transactions: string[]; since: string; entries: number; may_never_end?: string }[];
  /** The checkpoints it reached (the last one) and those pending or failed there, as it published them. */
  checkpoints?: CheckpointsView;
}

/** Everything `understudy status` says, as `--json` prints it and the status page serves it. */
export interface StatusReport {
  journals: JournalRow[];
  standbys: StandbyRow[];
  stream: StreamUse;
  baselines: (BaselineReport & { name: string })[];
  verifies: (VerifyReport & { name: string })[];
  doubts: DoubtsReport[];
  watchers: WatchStatus[];
  /** Set once a standby was promoted: who, when, at which fences, and where the other standbys stand. */
  promotion?: PromotionStatus;
}

/** Reads what agents and standbys of `stream` left in the state bucket and the stream, for `journal` only when given. */
export async function collectStatus(nc: NatsConnection, stream: string, journal?: string): Promise<StatusReport> {
  const rows: JournalRow[] = [];
  const baselines: (BaselineReport & { name: string })[] = [];
  const verifies: (VerifyReport & { name: string })[] = [];
  const doubts: DoubtsReport[] = [];
  const watchers: WatchStatus[] = [];
  let use: StreamUse;
  let promotion: PromotionStatus | undefined;
  // One listing of the bucket for everything below: status, the promotion, the standby rows.
  const kv = await openStateKv(nc, stream);
  const jsm = await jetstreamManager(nc);
  const keys = await stateKeys(jsm, stream);
  {
    const names = new Set<string>();
    // Journals are known from the stream's subjects, and from agents and replayers that reported.
    const info = await jsm.streams.info(stream, { subjects_filter: `${journalPrefix(stream)}.*` });
    for (const subject of Object.keys(info.state.subjects ?? {})) names.add(subject.slice(journalPrefix(stream).length + 1));
    const max = info.config.max_bytes;
    use = { name: stream, messages: info.state.messages, bytes: info.state.bytes, max_bytes: max, used_pct: max > 0 ? round((100 * info.state.bytes) / max) : 0, first_seq: info.state.first_seq, last_seq: info.state.last_seq };
    for (const k of keys) {
      const key = parseStateKey(k);
      if (key === undefined) continue;
      const { kind, name } = key;
      if (kind === 'agent' || kind === 'applied') names.add(name);
      if (kind === 'baseline') {
        const b = await readState(kv, 'baseline', name);
        if (b !== undefined) baselines.push({ name, ...b });
      }
      if (kind === 'verify') {
        const v = await readState(kv, 'verify', name);
        if (v !== undefined) verifies.push({ name, ...v });
      }
      if (kind === 'watch') {
        const w = await readState(kv, 'watch', name);
        if (w !== undefined) watchers.push(w);
      }
      if (kind === 'doubts') {
        const d = await readState(kv, 'doubts', name);
        if (d !== undefined && d.count > 0) doubts.push(d);
      }
    }
    promotion = await collectPromotion(kv, keys);
    if (journal !== undefined) {
      for (const n of names) if (n !== journal) names.delete(n);
      names.add(journal);
    }
    if (journal !== undefined) names.add(journal);
    const now = Date.now();
    for (const name of [...names].sort()) {
      const agent = await readState(kv, 'agent', name);
      const applied = await readState(kv, 'applied', name);
      const last = await jsm.streams.getMessage(stream, { last_by_subj: journalSubject(stream, name) }).catch(() => null);
      const lastHeader = last === null ? undefined : decodeEntry(lastEntry(last.data)).header;
      const row: JournalRow = { journal: name };
      if (agent !== undefined) {
        Object.assign(row, { mode: agent.mode, agent_epoch: agent.epoch, agent_last_seq: agent.appended, agent_shipped_seq: agent.acked.seq, heartbeat_age_s: round((now - agent.time) / 1000), dropped: agent.dropped ?? 0 });
      }
      row.stream_last_seq = lastHeader?.s;
      row.applied_seq = applied?.s;
      if (applied?.failing !== undefined) row.standby_failing = applied.failing;
      if (agent?.refused !== undefined) row.stream_refuses = { reason: agent.refused.reason, since: new Date(agent.refused.since).toISOString() };
      const newest = Math.max(row.agent_last_seq ?? 0, row.stream_last_seq ?? 0);
      row.lag_entries = Math.max(0, newest - (applied?.s ?? 0));
      row.lag_seconds = row.lag_entries === 0 || lastHeader === undefined ? 0 : round((lastHeader.t - (applied?.t ?? lastHeader.t)) / 1000);
      row.differs = differs(agent?.lost ?? [], baselines, verifies);
      const u = agent?.unclean;
      // A verify that found the trees equal after it (or a baseline) settles what it may have left out.
      if (u !== undefined && !verifies.some((v) => v.time > u.at && v.equal) && !baselines.some((b) => b.state === 'done' && (b.finished ?? 0) > u.at)) {
        row.may_differ = `its process ${u.holder.split(' ')[0]} ended without flushing (killed or crashed; found ${new Date(u.at).toISOString()}): a change made by a call that had not returned then may have reached the primary's disk without an entry; run \`understudy verify\``;
      }
      rows.push(row);
    }
  }
  // A journal whose early history went to an earlier stream is mended by a baseline taken after it was seen.
  const lastBaseline = Math.max(0, ...baselines.filter((b) => b.state === 'done').map((b) => b.finished ?? 0));
  for (const d of doubts) {
    const kept = d.objects.filter((o) => !(o.root === '' && o.path.startsWith('journal ') && lastBaseline > o.at));
    d.count -= d.objects.length - kept.length;
    d.objects = kept;
  }
  doubts.splice(0, doubts.length, ...doubts.filter((d) => d.count > 0));
  const standbys = await standbyRows(jsm, kv, stream, rows, keys);
  return { journals: rows, standbys, stream: use, baselines, verifies, doubts, watchers, promotion };
}

/**
 * The lost ranges that no finished baseline, nor a verify that found the trees equal (or
 * repaired every difference), came after, said as one reason; undefined when none.
 */
function differs(lost: LostRange[], baselines: BaselineReport[], verifies: VerifyReport[]): string | undefined {
  const mended = Math.max(0,
    ...baselines.filter((b) => b.state === 'done').map((b) => b.finished ?? 0),
    ...verifies.filter((v) => v.equal || (v.repaired >= v.differences && v.unsettled === 0)).map((v) => v.time));
  const open = lost.filter((l) => l.at > mended);
  if (open.length === 0) return undefined;
  return `${open.map((l) => `${l.reason} (${new Date(l.at).toISOString()})`).join('; ')}; run \`understudy baseline\` (or \`understudy verify --repair\`) on the primary to mend it`;
}

/** Every registered standby as a slot: its state, its lag in entries, bytes and seconds, and what it may still fall behind. */
export async function standbyRows(jsm: JetStreamManager, kv: KV, stream: string, journals: JournalRow[] = [], keys?: string[]): Promise<StandbyRow[]> {
  const now = Date.now();
  const { stream: s, slots } = await readSlots(jsm, kv, stream, now, keys);
  const rows: StandbyRow[] = [];
  for (const v of slots.sort((a, b) => a.key.localeCompare(b.key))) {
    const r = v.record;
    const committed = committedIn(r, s);
    const limits = limitsOf(r, s.maxBytes);
    const lagBytes = heldBytes(committed, s);
    const stopped = r.stoppedAt !== undefined || now - r.time > DEFAULTS.slots.stoppedAfterMs;
    const state: StandbyRow['state'] = v.lost ? 'lost' : stopped ? 'stopped' : r.caughtUp === false ? 'catching up' : 'streaming';
    // One journal's replayer is behind by that journal's entries; one of all, by the stream's.
    const j = r.journal === undefined ? undefined : journals.find((x) => x.journal === r.journal);
    const lagEntries = j === undefined ? Math.max(0, s.lastSeq - committed) : Math.max(0, (j.stream_last_seq ?? 0) - (r.journals[j.journal]?.s ?? 0));
    const lost = v.lost ? await readState(kv, 'lost', v.key) : undefined;
    const rebase = v.lost ? await readState(kv, 'rebase', v.key) : undefined;
    const cps = await readState(kv, 'checkpoints', v.key);
    rows.push({
      name: v.key, ...(r.journal === undefined ? {} : { journal: r.journal }), host: r.host, state, committed_seq: committed,
      lag_entries: lagEntries, lag_bytes: lagBytes, lag_seconds: round((v.oldestUnappliedMs ?? 0) / 1000),
      safe_bytes: v.lost ? 0 : Number.isFinite(limits.bytes) ? Math.max(0, limits.bytes - lagBytes) : null,
      max_lag_bytes: Number.isFinite(limits.bytes) ? limits.bytes : null, max_lag_seconds: round(limits.ms / 1000),
      last_active: new Date(r.time).toISOString(),
      ...(stopped || v.lost ? { inactive_since: new Date(r.time).toISOString() } : {}),
      ...(lost === undefined ? {} : { lost: { since: new Date(lost.since).toISOString(), reason: lost.reason, by: lost.by } }),
      ...(stagedOf(r).length === 0 ? {} : { staging: stagedOf(r).map((x) => stagingRow(x, journals.find((y) => y.journal === x.journal))) }),
      ...(cps === undefined ? {} : { checkpoints: checkpointsView(cps) }),
      ...(rebase === undefined ? {} : { rebase: { state: rebase.state, ...(rebase.step === undefined ? {} : { step: rebase.step }), requested: new Date(rebase.requested).toISOString(), ...(rebase.by === undefined ? {} : { by: rebase.by }), ...(rebase.error === undefined ? {} : { error: rebase.error }) } }),
    });
  }
  return rows;
}

/** The staged transactions a standby's record lists, those well formed only: the record came over the network. */
function stagedOf(r: { staging?: unknown }): { journal: string; ids: string[]; since: number; entries: number }[] {
  if (!Array.isArray(r.staging)) return [];
  return r.staging.filter((x): x is { journal: string; ids: string[]; since: number; entries: number } =>
    typeof x === 'object' && x !== null && typeof x.journal === 'string' && Array.isArray(x.ids) && x.ids.every((i: unknown) => typeof i === 'string') &&
    Number.isFinite(x.since) && Number.isSafeInteger(x.entries));
}

/** One staged transaction as status says it: its agent not heard from for DEFAULTS.verify.liveAgentMs means its end may never come. */
function stagingRow(x: { journal: string; ids: string[]; since: number; entries: number }, j: JournalRow | undefined): NonNullable<StandbyRow['staging']>[number] {
  const age = j?.heartbeat_age_s;
  const dead = age === undefined || age * 1000 > DEFAULTS.verify.liveAgentMs;
  return {
    journal: x.journal, transactions: x.ids, since: new Date(x.since).toISOString(), entries: x.entries,
    ...(dead ? { may_never_end: age === undefined ? 'its agent has no heartbeat' : `its agent's last heartbeat is ${age} s old` } : {}),
  };
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
