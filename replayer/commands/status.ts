import { SettingsError } from '../../lib/errors';
import { connectNats } from '../../lib/nats';
import type { BaselineReport, DoubtsReport, VerifyReport, WatchStatus } from '../../lib/state-bucket';
import { common, parse } from '../../lib/cli-options';
import { DEFAULTS } from '../../lib/settings';
import { collectStatus, type JournalRow, type StandbyRow, type StatusReport, type StreamUse } from '../status/collect';
import { formatSize } from '../../lib/units';
import { describePromotion } from '../status/promotion';
import { describeUnsure } from '../../lib/state/watch';

export const usage = `understudy status [--nats URL] [--stream S] [--name NAME] [--json] [--max-lag N]

For each journal: the agent's mode, last spooled and shipped entry and heartbeat age;
the last entry in the stream; the last applied on the standby; the lag in entries and seconds;
STANDBY FAILING with the reason when the standby's disk failed a write or fsync, and
THE STREAM REFUSES ITS ENTRIES when the stream turns the agent away (full, or another limit).
Then how full the stream is and where it was trimmed, and the last baseline and
the last verify: when, how they ended, what they found and mended.
A journal whose standby differs from the primary (entries its agent's spool lost before
they were shipped, not mended by a baseline since) is said so in words, with the reason.
Then one line per standby, as a replication slot (with the last checkpoint it reached, and those pending or failed there): streaming, catching up, STOPPED (it holds
the stream back) or LOST (the stream no longer keeps what it lacks; with its rebase); its
committed stream position; its lag in entries, bytes and seconds; how much further it may
fall behind before it is lost; when it was last active. A transaction a standby stages (none of
it applied until its end comes): journal, transaction, since when, how many entries, and
IT MAY NEVER END once that journal's agent has no live heartbeat.
After a promotion: which standby became the primary, when and at which fence per journal, and
where every other standby stands against the fences (behind, at, or AHEAD: holding changes
the new primary lacks).
--json prints { journals, standbys, stream, baselines, verifies, doubts, watchers, promotion }.
--max-lag N exits 1 when any journal is more than N entries behind, its standby differs, its standby is failing, the stream refuses its entries, a standby is lost, or a standby is ahead of a fence (for monitoring).`;

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
  let report: StatusReport;
  try {
    report = await collectStatus(nc, o.stream, o.name);
  } finally {
    await nc.close();
  }
  const { journals: rows, standbys, stream, baselines, verifies, doubts, watchers, promotion } = report;
  if (values.json === true) console.log(JSON.stringify({ journals: rows, standbys, stream, baselines, verifies, doubts, watchers, promotion }, null, 2));
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
      if (x !== undefined) console.log(`journal ${r.journal}: THE STREAM REFUSES ITS ENTRIES since ${x.since} (${x.reason}): they wait in the agent's spool (${Math.max(0, (r.agent_last_seq ?? 0) - (r.agent_shipped_seq ?? 0))} not shipped) and the standby falls behind until the stream takes them again: a standby holds the stream back (see the standby lines), or no running standby may trim it`);
    }
    for (const s of standbys) console.log(describeStandby(s, stream));
    for (const s of standbys) for (const line of describeStaging(s)) console.log(line);
    for (const line of promotion === undefined ? [] : describePromotion(promotion)) console.log(line);
    console.log(describeStream(stream));
    for (const b of baselines) console.log(describeBaseline(b));
    for (const v of verifies) console.log(describeVerify(v));
    for (const w of watchers) console.log(describeWatch(w, verifies));
  }
  if (maxLag !== undefined && rows.some((r) => (r.lag_entries ?? 0) > maxLag || r.differs !== undefined || r.standby_failing !== undefined || r.stream_refuses !== undefined)) return 1;
  if (maxLag !== undefined && standbys.some((s) => s.state === 'lost')) return 1;
  if (maxLag !== undefined && promotion?.standbys.some((s) => s.stands === 'ahead') === true) return 1;
  return 0;
}

/** A line per transaction a standby stages: which journal, which transaction, since when, how many entries; and whether it may never end. */
function describeStaging(s: StandbyRow): string[] {
  return (s.staging ?? []).map((x) => `standby ${s.name}: journal ${x.journal} is inside transaction ${x.transactions.join(', ')} since ${x.since}: ${x.entries} entries staged, none applied until it ends` +
    (x.may_never_end === undefined ? '' : `; IT MAY NEVER END (${x.may_never_end}): a promotion sets its entries aside`));
}

function print(rows: JournalRow[]): void {
  if (rows.length === 0) {
    console.log('no journals in this stream yet');
    return;
  }
  const cols: [keyof JournalRow, string][] = [
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

/** A standby's checkpoints, in words: the last reached, then the pending and failed ones. */
function describeCheckpoints(s: StandbyRow): string {
  const c = s.checkpoints;
  if (c === undefined) return '';
  // A standby that never saw a checkpoint says nothing of them: most deployments take none.
  if (c.last_reached === undefined && c.pending.length === 0 && c.failed.length === 0) return '';
  const last = c.last_reached === undefined ? '; no checkpoint reached yet' : `; checkpoint ${c.last_reached.name} (taken ${c.last_reached.time}) reached ${c.last_reached.reached_at}, ${c.kept} kept (${formatSize(c.kept_bytes)})`;
  const pending = c.pending.map((p) => `; checkpoint ${p.name} pending (waiting for ${p.waiting_for.join(', ') || 'its journals'})`).join('');
  const failed = c.failed.map((f) => `; checkpoint ${f.name} FAILED here: ${f.why}`).join('');
  return `${last}${pending}${failed}`;
}

/** Where a standby stands as a slot, in words: lost and stopped ones loudly. */
function describeStandby(s: StandbyRow, u: StreamUse): string {
  const who = `${s.name}${s.journal !== undefined ? ` (journal ${s.journal})` : ''} on ${s.host}`;
  const lag = `committed stream position ${s.committed_seq}${s.journal === undefined ? ` of ${u.last_seq}` : ''} (${s.lag_entries} ${s.journal === undefined ? '' : 'entries '}behind, about ${formatSize(s.lag_bytes)}, ${s.lag_seconds} s)`;
  const active = `last active ${round((Date.now() - Date.parse(s.last_active)) / 1000)} s ago`;
  if (s.state === 'lost') {
    const r = s.rebase;
    const healing = r === undefined ? 'it asks the primary for a baseline and a verify when it runs' :
      `rebase ${r.state}${r.step !== undefined ? ` (${r.step})` : ''}${r.by !== undefined ? ` by ${r.by}` : ''}${r.error !== undefined ? `: ${r.error}` : ''}`;
    return `STANDBY ${who} IS LOST since ${s.lost?.since ?? '?'} (marked by ${s.lost?.by ?? '?'}: ${s.lost?.reason ?? '?'}): the stream and spools no longer keep what it lacks, it is not in sync; ${healing}; ${lag}; ${active}`;
  }
  const room = s.safe_bytes === null ? 'no limit on how far it may fall behind' : `may fall ${formatSize(s.safe_bytes)} further behind before it is lost`;
  const state = s.state === 'stopped' ? `STOPPED since ${s.inactive_since ?? '?'} (it holds the stream and spools back)` : s.state;
  return `standby ${who}: ${state}; ${lag}; ${room}; ${active}${describeCheckpoints(s)}`;
}

function describeStream(u: StreamUse): string {
  const trimmed = u.first_seq > 1 ? `; trimmed below ${u.first_seq}, what every standby committed` : '';
  const line = `stream ${u.name}: ${u.messages} messages, ${formatSize(u.bytes)} of ${u.max_bytes > 0 ? `${formatSize(u.max_bytes)} (${u.used_pct} %)` : 'no limit'}${trimmed}`;
  return u.used_pct < STREAM_WARN_PCT ? line : `${line}; when full it refuses entries and agents spool them: a standby holds it back (see the standby lines), or no running standby may trim it`;
}

function describeBaseline(b: BaselineReport & { name: string }): string {
  const when = new Date(b.finished ?? b.started).toISOString();
  const what = `${b.objects} objects, ${(b.bytes / (1024 * 1024)).toFixed(1)} MiB of ${b.roots.join(', ')}`;
  return `baseline "${b.name}": ${b.state} ${when}${b.state === 'running' ? '' : `, ${what}`}${b.error !== undefined ? ` (${b.error})` : ''}`;
}

function describeWatch(w: WatchStatus, verifies: readonly VerifyReport[]): string {
  const p = w.lastPass;
  const pass = p === undefined ? 'no full reconciliation has ended yet' :
    `last full reconciliation ended ${new Date(p.finishedAt).toISOString()} (${p.objects} objects in ${round((p.finishedAt - p.startedAt) / 1000)} s), mended ${p.mended}${p.mended > 0 ? ` (${p.examples.slice(0, 3).join(', ')}${p.mended > 3 ? ', …' : ''})` : ''}`;
  const total = w.mendedTotal === undefined ? '' : `; ${w.mendedTotal} mended by full passes since it started`;
  // Until a verify after its first look left the trees equal, the standby may hold what that look could not know was removed.
  const u = w.unsure;
  const mended = u !== undefined && verifies.some((v) => v.time > u.at && (v.equal || v.repaired >= v.differences));
  const doubt = u === undefined || mended ? '' : `; NOT SURE THE STANDBY IS EQUAL: ${describeUnsure(u)}; run "understudy verify --repair"`;
  return `watch "${w.name}": ${w.journaled} change(s) journaled; ${pass}${total}${w.polled > 0 ? `; ${w.polled} directories polled: the kernel would not watch them` : ''}${doubt}; reported ${round((Date.now() - w.time) / 1000)} s ago`;
}

function describeVerify(v: VerifyReport & { name: string }): string {
  const found = v.equal ? 'equal' : `${v.differences} difference(s)`;
  return `verify "${v.name}": ${new Date(v.time).toISOString()} ${v.roots.join(', ')}: ${found}` +
    `${v.repaired > 0 ? `, ${v.repaired} repaired` : ''}${v.unsettled > 0 ? `, ${v.unsettled} kept changing` : ''}`;
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
