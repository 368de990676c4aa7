import type { KV } from '@nats-io/kv';
import { listKeys } from '../lib/nats';
import { parseStateKey, readState, type AgentHeartbeat, type BaselineReport, type VerifyReport } from '../lib/state-bucket';
import { knownJournals, type Agents } from './agents';
import type { Metric } from './metrics';
import type { JournalSource } from './source/journal-source';
import type { JournalPos } from './state';
import type { ReplaySummary } from './summary';
import type { StandbyRow } from './status/collect';

/** What the replayer's metrics are read from at each scrape. */
export interface MetricsView {
  journal?: string;
  summary: ReplaySummary;
  positions(): Readonly<Record<string, JournalPos>>;
  /** The stream position the replayer resumes after. */
  streamSeq(): number;
  /** When applied changes were last made durable (ms). */
  lastCommitAt(): number;
  source: JournalSource;
  agents: Agents;
  kv: KV;
  /** Every registered standby as a slot (status's rows). */
  standbys: () => Promise<StandbyRow[]>;
}

/** The replayer's counters, and per journal the positions of agent and standby and the lag. */
export async function collectMetrics(v: MetricsView): Promise<Metric[]> {
  const journals = v.positions();
  // Trimmed below the slowest standby that counts: one that holds it back fills it, and at max_bytes it refuses entries.
  const stream = await v.source.info().catch(() => undefined);
  const per: { name: string; applied?: JournalPos; agent?: AgentHeartbeat }[] = [];
  for (const name of (await knownJournals(Object.keys(journals), v.agents, v.journal)).sort()) {
    per.push({ name, applied: journals[name], agent: await v.agents.heartbeat(name) });
  }
  const now = Date.now();
  const g = (name: string, help: string, pick: (p: (typeof per)[number]) => number | undefined): Metric => ({
    name, help, type: 'gauge',
    samples: per.flatMap((p) => { const val = pick(p); return val === undefined ? [] : [{ labels: { journal: p.name }, value: val }]; }),
  });
  const { summary } = v;
  return [
    { name: 'understudy_replayer_applied_entries_total', help: 'Entries applied since the replayer started.', type: 'counter', samples: [{ value: summary.applied }] },
    { name: 'understudy_replayer_duplicate_entries_total', help: 'Entries skipped as already applied.', type: 'counter', samples: [{ value: summary.duplicates }] },
    { name: 'understudy_replayer_skipped_bad_entries_total', help: 'Bad entries quarantined and passed over.', type: 'counter', samples: [{ value: summary.skipped }] },
    { name: 'understudy_replayer_stream_position', help: 'Stream sequence the replayer resumes after.', type: 'gauge', samples: [{ value: v.streamSeq() }] },
    { name: 'understudy_replayer_last_commit_timestamp_seconds', help: 'When applied changes were last made durable.', type: 'gauge', samples: [{ value: v.lastCommitAt() / 1000 }] },
    ...(stream === undefined ? [] : [
      { name: 'understudy_stream_bytes', help: 'Bytes the journal stream holds.', type: 'gauge' as const, samples: [{ value: stream.bytes }] },
      { name: 'understudy_stream_max_bytes', help: 'Bytes the journal stream may hold; then it refuses entries (it is trimmed below the slowest standby that counts).', type: 'gauge' as const, samples: [{ value: stream.maxBytes }] },
    ]),
    g('understudy_journal_applied_seq', 'Last journal sequence applied and fsynced on the standby.', (p) => p.applied?.s),
    g('understudy_journal_agent_seq', 'Last journal sequence the agent reported spooled.', (p) => p.agent?.appended),
    g('understudy_journal_lag_entries', 'Entries the agent spooled that the standby has not applied.', (p) => (p.agent === undefined ? undefined : Math.max(0, p.agent.appended - (p.applied?.s ?? 0)))),
    g('understudy_journal_lag_seconds', 'Age of the newest applied entry when the agent has more.', (p) => (p.agent === undefined || p.applied === undefined || p.agent.appended <= p.applied.s ? (p.agent === undefined ? undefined : 0) : (now - p.applied.t) / 1000)),
    g('understudy_journal_heartbeat_age_seconds', 'Seconds since the agent last reported.', (p) => (p.agent === undefined ? undefined : (now - p.agent.time) / 1000)),
    g('understudy_journal_dropped_changes', 'Changes the agent could not journal because its spool was full.', (p) => p.agent?.dropped),
    { name: 'understudy_replayer_stale_snapshots_total', help: 'Snapshots (baseline, watch, repair) not applied because the standby had a newer version.', type: 'counter', samples: [{ value: summary.stale }] },
    ...(await auditMetrics(v.kv)),
    ...standbyMetrics(await v.standbys().catch(() => [])),
  ];
}

const STATES: StandbyRow['state'][] = ['streaming', 'catching up', 'stopped', 'lost'];

/** Each standby as a slot, as status's rows say (pg_replication_slots' columns, as gauges). */
export function standbyMetrics(rows: StandbyRow[]): Metric[] {
  const g = (name: string, help: string, pick: (r: StandbyRow) => number | null | undefined): Metric => ({
    name, help, type: 'gauge',
    samples: rows.flatMap((r) => { const val = pick(r); return val === null || val === undefined ? [] : [{ labels: { standby: r.name }, value: val }]; }),
  });
  return [
    g('understudy_standby_committed_seq', 'Stream sequence the standby committed (applied and fsynced).', (r) => r.committed_seq),
    g('understudy_standby_lag_entries', 'Stream messages after what the standby committed.', (r) => r.lag_entries),
    g('understudy_standby_lag_bytes', 'About how many bytes of the stream the standby holds back.', (r) => r.lag_bytes),
    g('understudy_standby_lag_seconds', 'Age of the oldest entry the standby has not applied.', (r) => r.lag_seconds),
    g('understudy_standby_safe_bytes', 'Bytes the standby may still fall behind before it is lost.', (r) => r.safe_bytes),
    g('understudy_standby_last_active_timestamp_seconds', 'When the standby last reported.', (r) => Date.parse(r.last_active) / 1000),
    {
      name: 'understudy_standby_state', help: '1 for the state the standby is in: streaming, catching up, stopped or lost.', type: 'gauge',
      samples: rows.flatMap((r) => STATES.map((state) => ({ labels: { standby: r.name, state }, value: r.state === state ? 1 : 0 }))),
    },
  ];
}

/** The last baseline and verify of each name, as `understudy status` shows them. */
export async function auditMetrics(kv: KV): Promise<Metric[]> {
  const baselines: { name: string; r: BaselineReport }[] = [];
  const verifies: { name: string; r: VerifyReport }[] = [];
  for (const k of await listKeys(kv, '>')) {
    const key = parseStateKey(k);
    if (key?.kind === 'baseline') {
      const r = await readState(kv, 'baseline', key.name).catch(() => undefined);
      if (r !== undefined) baselines.push({ name: key.name, r });
    } else if (key?.kind === 'verify') {
      const r = await readState(kv, 'verify', key.name).catch(() => undefined);
      if (r !== undefined) verifies.push({ name: key.name, r });
    }
  }
  const gauge = <T>(name: string, help: string, list: { name: string; r: T }[], pick: (r: T) => number | undefined): Metric => ({
    name, help, type: 'gauge',
    samples: list.flatMap(({ name: n, r }) => { const v = pick(r); return v === undefined ? [] : [{ labels: { name: n }, value: v }]; }),
  });
  return [
    gauge('understudy_baseline_finished_timestamp_seconds', 'When the last baseline of this name finished.', baselines, (r) => (r.finished === undefined ? undefined : r.finished / 1000)),
    gauge('understudy_baseline_ok', '1 when the last baseline put everything in the stream, 0 when it failed or runs.', baselines, (r) => (r.state === 'done' ? 1 : 0)),
    gauge('understudy_baseline_objects', 'Objects the last baseline journaled.', baselines, (r) => r.objects),
    gauge('understudy_baseline_bytes', 'Bytes the last baseline journaled.', baselines, (r) => r.bytes),
    gauge('understudy_verify_timestamp_seconds', 'When the last verify of this name ran.', verifies, (r) => r.time / 1000),
    gauge('understudy_verify_equal', '1 when the last verify found the standby equal (after any repair).', verifies, (r) => (r.equal ? 1 : 0)),
    gauge('understudy_verify_differences', 'Differences the last verify found.', verifies, (r) => r.differences),
    gauge('understudy_verify_repaired', 'Objects the last verify repaired.', verifies, (r) => r.repaired),
  ];
}
