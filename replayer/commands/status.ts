import { jetstreamManager } from '@nats-io/jetstream';
import { decodeEntry } from '../../lib/codec';
import { lastEntry } from '../../lib/batch';
import { SettingsError } from '../../lib/errors';
import { connectNats, openStateKv, stateKeys } from '../../lib/nats';
import { journalPrefix, journalSubject } from '../../lib/subjects';
import type { LostRange } from '../../lib/spool';
import { parseStateKey, readState, type StandbyRecord, type BaselineReport, type DoubtsReport, type VerifyReport, type WatchStatus } from '../../lib/state-bucket';
import { common, parse } from '../../lib/cli-options';
import { DEFAULTS } from '../../lib/settings';

export const usage = `understudy status [--nats URL] [--stream S] [--name NAME] [--json] [--max-lag N]

For each journal: the agent's mode, last spooled and shipped entry and heartbeat age;
the last entry in the stream; the last applied on the standby; the lag in entries and seconds;
STANDBY FAILING with the reason when the standby's disk failed a write or fsync, and
THE STREAM REFUSES ITS ENTRIES when the stream turns the agent away (full: nothing trims it yet).
Then how full the stream is (nothing trims it yet: see README), and the last baseline and
the last verify: when, how they ended, what they found and mended.
A journal whose standby differs from the primary (entries its agent's spool lost before
they were shipped, not mended by a baseline since) is said so in words, with the reason.
Then one line per standby: its committed stream position, how far behind the stream, when last active.
--json prints { journals, standbys, stream, baselines, verifies, doubts, watchers }.
--max-lag N exits 1 when any journal is more than N entries behind, its standby differs, its standby is failing, or the stream refuses its entries (for monitoring).`;

interface Row {
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
interface StreamUse {
  name: string;
  messages: number;
  bytes: number;
  max_bytes: number;
  used_pct: number;
  /** The stream's last sequence: a standby's committed position is measured against it. */
  last_seq: number;
}

const STREAM_WARN_PCT = DEFAULTS.streamWarnPct;

/** `understudy status`. */
export async function status(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parse(argv, { json: { type: 'boolean' }, 'max-lag': { type: 'string' } });
  if (values.help === true) {
    console.log(usage);
    return 0;
  }
  const o = common(values, env, false);
  const maxLag = values['max-lag'] === undefined ? undefined : Number(values['max-lag']);
  if (maxLag !== undefined && (!Number.isSafeInteger(maxLag) || maxLag < 0)) throw new SettingsError(`--max-lag ${values['max-lag']} is not a whole number`);
  const nc = await connectNats(o.nats, 'understudy-status');
  const rows: Row[] = [];
  const baselines: (BaselineReport & { name: string })[] = [];
  const verifies: (VerifyReport & { name: string })[] = [];
  const doubts: DoubtsReport[] = [];
  const watchers: WatchStatus[] = [];
  const standbys: StandbyRecord[] = [];
  let stream: StreamUse | undefined;
  try {
    const kv = await openStateKv(nc, o.stream);
    const jsm = await jetstreamManager(nc);
    const names = new Set<string>();
    // Journals are known from the stream's subjects, and from agents and replayers that reported.
    const info = await jsm.streams.info(o.stream, { subjects_filter: `${journalPrefix(o.stream)}.*` });
    for (const subject of Object.keys(info.state.subjects ?? {})) names.add(subject.slice(journalPrefix(o.stream).length + 1));
    const max = info.config.max_bytes;
    stream = { name: o.stream, messages: info.state.messages, bytes: info.state.bytes, max_bytes: max, used_pct: max > 0 ? round((100 * info.state.bytes) / max) : 0, last_seq: info.state.last_seq };
    for (const k of await stateKeys(jsm, o.stream)) {
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
      if (kind === 'standby') {
        const s = await readState(kv, 'standby', name);
        if (s !== undefined) standbys.push(s);
      }
      if (kind === 'doubts') {
        const d = await readState(kv, 'doubts', name);
        if (d !== undefined && d.count > 0) doubts.push(d);
      }
    }
    if (o.name !== undefined) {
      for (const n of names) if (n !== o.name) names.delete(n);
      names.add(o.name);
    }
    if (o.name !== undefined) names.add(o.name);
    const now = Date.now();
    for (const name of [...names].sort()) {
      const agent = await readState(kv, 'agent', name);
      const applied = await readState(kv, 'applied', name);
      const last = await jsm.streams.getMessage(o.stream, { last_by_subj: journalSubject(o.stream, name) }).catch(() => null);
      const lastHeader = last === null ? undefined : decodeEntry(lastEntry(last.data)).header;
      const row: Row = { journal: name };
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
  } finally {
    await nc.close();
  }
  // A journal whose early history went to an earlier stream is mended by a baseline taken after it was seen.
  const lastBaseline = Math.max(0, ...baselines.filter((b) => b.state === 'done').map((b) => b.finished ?? 0));
  for (const d of doubts) {
    const kept = d.objects.filter((o) => !(o.root === '' && o.path.startsWith('journal ') && lastBaseline > o.at));
    d.count -= d.objects.length - kept.length;
    d.objects = kept;
  }
  doubts.splice(0, doubts.length, ...doubts.filter((d) => d.count > 0));
  if (values.json === true) console.log(JSON.stringify({ journals: rows, standbys, stream, baselines, verifies, doubts, watchers }, null, 2));
  else {
    print(rows);
    for (const d of doubts) console.log(describeDoubts(d));
    for (const r of rows) if (r.differs !== undefined) console.log(`journal "${r.journal}": standby differs: ${r.differs}`);
    for (const r of rows) if (r.may_differ !== undefined) console.log(`journal "${r.journal}": STANDBY MAY DIFFER: ${r.may_differ}`);
    for (const r of rows) {
      if (r.standby_failing !== undefined) console.log(`journal ${r.journal}: STANDBY FAILING: its disk failed (${r.standby_failing}); nothing past applied ${r.applied_seq ?? 0} is on it for sure`);
    }
    for (const r of rows) {
      const x = r.stream_refuses;
      if (x !== undefined) console.log(`journal ${r.journal}: THE STREAM REFUSES ITS ENTRIES since ${x.since} (${x.reason}): they wait in the agent's spool (${Math.max(0, (r.agent_last_seq ?? 0) - (r.agent_shipped_seq ?? 0))} not shipped) and the standby falls behind until the stream takes them again; nothing trims it yet: purge what every standby applied (README, "What is not built yet")`);
    }
    for (const s of standbys) console.log(describeStandby(s, stream));
    if (stream !== undefined) console.log(describeStream(stream));
    for (const b of baselines) console.log(describeBaseline(b));
    for (const v of verifies) console.log(describeVerify(v));
    for (const w of watchers) console.log(describeWatch(w));
  }
  if (maxLag !== undefined && rows.some((r) => (r.lag_entries ?? 0) > maxLag || r.differs !== undefined || r.standby_failing !== undefined || r.stream_refuses !== undefined)) return 1;
  return 0;
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

function print(rows: Row[]): void {
  if (rows.length === 0) {
    console.log('no journals in this stream yet');
    return;
  }
  const cols: [keyof Row, string][] = [
    ['journal', 'JOURNAL'], ['mode', 'MODE'], ['agent_last_seq', 'SPOOLED'], ['agent_shipped_seq', 'SHIPPED'],
    ['heartbeat_age_s', 'HEARTBEAT_AGE_S'], ['stream_last_seq', 'IN_STREAM'], ['applied_seq', 'APPLIED'],
    ['lag_entries', 'LAG'], ['lag_seconds', 'LAG_S'], ['dropped', 'DROPPED'],
  ];
  const cells = [cols.map(([, h]) => h), ...rows.map((r) => cols.map(([k]) => (r[k] === undefined ? '-' : String(r[k]))))];
  const widths = cols.map((_, i) => Math.max(...cells.map((c) => c[i].length)));
  for (const c of cells) console.log(c.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd());
}

/** A standby that cannot be sure it equals the primary says so in words: lag 0 would be a lie. */
function describeDoubts(d: DoubtsReport): string {
  const some = d.objects.slice(0, 5).map((o) => (o.root === '' ? o.path : `${o.root}/${o.path}`)).join(', ');
  return `STANDBY ${d.standby} MAY DIFFER from the primary: ${d.count} object(s) it cannot be sure of (${some}${d.count > 5 ? ', …' : ''}); first: ${d.objects[0]?.why ?? ''}. understudy verify --repair (or a baseline, for a journal) mends them`;
}

/** Where a standby stands, as its last committed record says. */
function describeStandby(s: StandbyRecord, u: StreamUse | undefined): string {
  const behind = u === undefined || s.journal !== undefined ? '' : ` of ${u.last_seq} (${Math.max(0, u.last_seq - s.streamSeq)} behind)`;
  const journals = Object.entries(s.journals).sort(([a], [b]) => a.localeCompare(b)).map(([j, p]) => `${j} ${p.e}.${p.s}`).join(', ');
  return `standby ${s.name}${s.journal !== undefined ? ` (journal ${s.journal})` : ''} on ${s.host}: committed stream position ${s.streamSeq}${behind}` +
    `${journals === '' ? '' : `; applied ${journals}`}; last active ${round((Date.now() - s.time) / 1000)} s ago`;
}

function describeStream(u: StreamUse): string {
  const line = `stream ${u.name}: ${u.messages} messages, ${size(u.bytes)} of ${u.max_bytes > 0 ? `${size(u.max_bytes)} (${u.used_pct} %)` : 'no limit'}`;
  return u.used_pct < STREAM_WARN_PCT ? line : `${line}; when full it refuses entries and agents spool them: purge what every standby applied (README, "What is not built yet")`;
}

function size(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GiB`;
  return n >= 1024 ** 2 ? `${(n / 1024 ** 2).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

function describeBaseline(b: BaselineReport & { name: string }): string {
  const when = new Date(b.finished ?? b.started).toISOString();
  const what = `${b.objects} objects, ${(b.bytes / (1024 * 1024)).toFixed(1)} MiB of ${b.roots.join(', ')}`;
  return `baseline "${b.name}": ${b.state} ${when}${b.state === 'running' ? '' : `, ${what}`}${b.error !== undefined ? ` (${b.error})` : ''}`;
}

function describeWatch(w: WatchStatus): string {
  const p = w.lastPass;
  const pass = p === undefined ? 'no full reconciliation has ended yet' :
    `last full reconciliation ended ${new Date(p.finishedAt).toISOString()} (${p.objects} objects in ${round((p.finishedAt - p.startedAt) / 1000)} s), mended ${p.mended}${p.mended > 0 ? ` (${p.examples.slice(0, 3).join(', ')}${p.mended > 3 ? ', …' : ''})` : ''}`;
  const total = w.mendedTotal === undefined ? '' : `; ${w.mendedTotal} mended by full passes since it started`;
  return `watch "${w.name}": ${w.journaled} change(s) journaled; ${pass}${total}${w.polled > 0 ? `; ${w.polled} directories polled: the kernel would not watch them` : ''}; reported ${round((Date.now() - w.time) / 1000)} s ago`;
}

function describeVerify(v: VerifyReport & { name: string }): string {
  const found = v.equal ? 'equal' : `${v.differences} difference(s)`;
  return `verify "${v.name}": ${new Date(v.time).toISOString()} ${v.roots.join(', ')}: ${found}` +
    `${v.repaired > 0 ? `, ${v.repaired} repaired` : ''}${v.unsettled > 0 ? `, ${v.unsettled} kept changing` : ''}`;
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
