import type { KV } from '@nats-io/kv';
import { listKeys } from '../lib/nats';
import { parseStateKey, readState, type AgentHeartbeat, type BaselineReport, type VerifyReport } from '../lib/state-bucket';
import { knownJournals, type Agents } from './agents';
import type { Metric } from './metrics';
import type { JournalSource } from './source/journal-source';
import type { JournalPos } from './state';
import type { ReplaySummary } from './summary';

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
}

/** The replayer's counters, and per journal the positions of agent and standby and the lag. */
export async function collectMetrics(v: MetricsView): Promise<Metric[]> {
  const journals = v.positions();
  // Nothing trims the stream yet: at max_bytes it refuses entries, so how full it is wants an alert.
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
      { name: 'understudy_stream_max_bytes', help: 'Bytes the journal stream may hold; then it refuses entries (nothing trims it yet).', type: 'gauge' as const, samples: [{ value: stream.maxBytes }] },
    ]),
    g('understudy_journal_applied_seq', 'Last journal sequence applied and fsynced on the standby.', (p) => p.applied?.s),
    g('understudy_journal_agent_seq', 'Last journal sequence the agent reported spooled.', (p) => p.agent?.appended),
    g('understudy_journal_lag_entries', 'Entries the agent spooled that the standby has not applied.', (p) => (p.agent === undefined ? undefined : Math.max(0, p.agent.appended - (p.applied?.s ?? 0)))),
    g('understudy_journal_lag_seconds', 'Age of the newest applied entry when the agent has more.', (p) => (p.agent === undefined || p.applied === undefined || p.agent.appended <= p.applied.s ? (p.agent === undefined ? undefined : 0) : (now - p.applied.t) / 1000)),
    g('understudy_journal_heartbeat_age_seconds', 'Seconds since the agent last reported.', (p) => (p.agent === undefined ? undefined : (now - p.agent.time) / 1000)),
    g('understudy_journal_dropped_changes', 'Changes the agent could not journal because its spool was full.', (p) => p.agent?.dropped),
    { name: 'understudy_replayer_stale_snapshots_total', help: 'Snapshots (baseline, watch, repair) not applied because the standby had a newer version.', type: 'counter', samples: [{ value: summary.stale }] },
    ...(await auditMetrics(v.kv)),
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
