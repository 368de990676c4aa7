import { randomUUID } from 'node:crypto';
import * as os from 'node:os';
import { jetstreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { common, parse } from '../../lib/cli-options';
import { checkpointSubject, parseCheckpointReply, type CheckpointReply, type CheckpointRequest } from '../../lib/checkpoint-protocol';
import type { CheckpointCut } from '../../lib/entry';
import { SettingsError } from '../../lib/errors';
import { connectNats, openStateKv, stateKeys } from '../../lib/nats';
import { checkObjectName } from '../../lib/objects';
import { processRuns } from '../../lib/process-alive';
import { DEFAULTS } from '../../lib/settings';
import { parseStateKey, readState, writeState, type CheckpointRecord } from '../../lib/state-bucket';
import { parseDuration } from '../../lib/units';

export const usage = `understudy checkpoint NAME [--nats URL] [--stream S] [--timeout-ms N] [--every 60s]

Takes a consistent checkpoint across every live agent of the stream: each freezes its
application's state-changing calls (once no transaction of its is open), the checkpoint entry
is written into every journal at one instant, and each thaws. Exits 0 once every checkpoint
entry is in JetStream, printing each journal's position; non-zero, naming the agent, when one
did not answer within --timeout-ms (default ${DEFAULTS.checkpoint.timeoutMs}). An agent thaws by
itself at --timeout-ms + ${DEFAULTS.checkpoint.commitGraceMs} ms whatever happens. The outcome is
left in the state bucket as checkpoint.NAME. --every 60s keeps taking them, named
NAME-<UTC time, like 20261202T051500Z>, until SIGINT or SIGTERM.`;

/** `understudy checkpoint`. */
export async function checkpoint(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parse(argv, { 'timeout-ms': { type: 'string' }, every: { type: 'string' } });
  if (values.help === true) {
    console.log(usage);
    return 0;
  }
  if (positionals.length !== 1) throw new SettingsError(`checkpoint takes one NAME, got ${positionals.length}\n\n${usage}`);
  const name = positionals[0];
  checkObjectName(name, 'checkpoint name');
  const timeoutMs = values['timeout-ms'] === undefined ? DEFAULTS.checkpoint.timeoutMs : Number(values['timeout-ms']);
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 50_000) throw new SettingsError(`--timeout-ms ${values['timeout-ms']} is not a number of milliseconds from 1 to 50000`);
  const everyMs = values.every === undefined ? undefined : parseDuration(values.every);
  if (everyMs === undefined && values.every !== undefined) throw new SettingsError(`--every ${values.every} is not a duration (like 60s, 5m, 200ms)`);
  if (everyMs !== undefined && everyMs <= 0) throw new SettingsError(`--every ${values.every} must be longer than nothing`);
  const o = common(values, env, false);
  const nc = await connectNats(o.nats, 'understudy-checkpoint');
  try {
    const kv = await openStateKv(nc, o.stream);
    const take = (n: string): Promise<boolean> => takeCheckpoint(nc, kv, o.stream, n, timeoutMs);
    if (everyMs === undefined) return (await take(name)) ? 0 : 1;
    // Below a second between takes the seconds alone would name two takes alike.
    return await every(everyMs, () => take(`${name}-${stamp(new Date(), everyMs < 1000)}`));
  } finally {
    await nc.close();
  }
}

/** Takes checkpoints every `ms` until SIGINT or SIGTERM; 0 when every one was taken. */
async function every(ms: number, take: () => Promise<boolean>): Promise<number> {
  let running = true;
  const stopped = new Promise<void>((resolve) => {
    const stop = (): void => {
      running = false;
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  let failed = 0;
  while (running) {
    const began = Date.now();
    if (!(await take())) failed++;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([stopped, new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, ms - (Date.now() - began)))))]);
    clearTimeout(timer);
  }
  return failed === 0 ? 0 : 1;
}

/** `20261202T051500Z` (with `ms`: `20261202T051500.123Z`): the time of a take, in its name. */
export function stamp(d: Date, ms = false): string {
  const iso = d.toISOString().replace(/[-:]/g, '');
  return ms ? iso : iso.replace(/\.\d+Z$/, 'Z');
}

/** A live agent: a fresh heartbeat, and on this host a process that still runs. */
interface LiveAgent { journal: string; pid: number; host: string }

async function liveAgents(nc: NatsConnection, kv: KV, stream: string): Promise<LiveAgent[]> {
  const now = Date.now();
  const found: LiveAgent[] = [];
  for (const k of await stateKeys(await jetstreamManager(nc), stream)) {
    const key = parseStateKey(k);
    if (key?.kind !== 'agent') continue;
    const beat = await readState(kv, 'agent', key.name);
    if (beat === undefined || now - beat.time > DEFAULTS.checkpoint.liveAgentMs) continue;
    // A process that ended cleanly left a fresh last heartbeat: it is not live.
    if (beat.host === os.hostname() && !processRuns(beat.pid)) continue;
    found.push({ journal: key.name, pid: beat.pid, host: beat.host });
  }
  return found.sort((a, b) => a.journal.localeCompare(b.journal));
}

/** One request to one agent; a timeout or no responder is an answer that refuses, saying so. */
async function ask(nc: NatsConnection, stream: string, journal: string, req: CheckpointRequest, timeoutMs: number): Promise<CheckpointReply> {
  try {
    const msg = await nc.request(checkpointSubject(stream, journal), JSON.stringify(req), { timeout: timeoutMs });
    return parseCheckpointReply(msg.string());
  } catch (err) {
    const e = err as Error & { code?: string };
    const text = `${e.name} ${e.message} ${e.code ?? ''}`;
    if (/no responders|503/i.test(text)) return { ok: false, why: 'no agent answers on its subject (its NATS connection is down, or it runs an understudy without checkpoints)' };
    if (/timeout/i.test(text)) return { ok: false, why: `did not answer within ${timeoutMs} ms (stopped, or too busy)` };
    return { ok: false, why: e.message };
  }
}

/** Takes checkpoint `name` once; true when every live agent wrote its entry and JetStream has it. */
export async function takeCheckpoint(nc: NatsConnection, kv: KV, stream: string, name: string, timeoutMs: number): Promise<boolean> {
  const id = randomUUID().replace(/-/g, '').slice(0, 24);
  const started = Date.now();
  const record: CheckpointRecord = { name, id, state: 'preparing', started, cut: [] };
  const agents = await liveAgents(nc, kv, stream);
  await writeState(kv, 'checkpoint', name, record);
  const fail = async (missing: { journal: string; why: string }[], error: string, cut: CheckpointCut[]): Promise<false> => {
    await writeState(kv, 'checkpoint', name, { ...record, state: 'failed', finished: Date.now(), cut, missing, error }).catch(() => undefined);
    console.error(`understudy checkpoint: ${name} failed: ${error}`);
    for (const m of missing) console.error(`  journal ${m.journal}: ${m.why}`);
    return false;
  };
  if (agents.length === 0) return fail([], `no live agent in stream ${stream} (no heartbeat younger than ${DEFAULTS.checkpoint.liveAgentMs} ms)`, []);
  const thawAfterMs = timeoutMs + DEFAULTS.checkpoint.commitGraceMs;
  // sentAt lets an agent that gets the prepare past its deadline (stopped meanwhile) refuse it rather than freeze.
  const sentAt = Date.now();
  const prepared = await Promise.all(agents.map(async (a) => ({ a, r: await ask(nc, stream, a.journal, { op: 'prepare', name, id, thawAfterMs, sentAt }, timeoutMs) })));
  // Every agent the prepare went to, answered or not: one that did not may yet take it (stopped, then continued) and freeze.
  const abortAll = (): Promise<unknown> => Promise.all(agents.map((a) => ask(nc, stream, a.journal, { op: 'abort', name, id }, timeoutMs)));
  const cut: CheckpointCut[] = [];
  const missing: { journal: string; why: string }[] = [];
  const members: string[] = [];
  for (const { a, r } of prepared) {
    if (r.ok) {
      cut.push({ j: r.j, e: r.e, s: r.s });
      members.push(a.journal);
    } else if (r.notMember === true) {
      console.error(`understudy checkpoint: journal ${a.journal} is not in it: ${r.why}`);
    } else {
      missing.push({ journal: a.journal, why: r.why });
    }
  }
  if (missing.length > 0 || cut.length === 0) {
    // Every agent thaws by itself at its deadline; the abort makes it now.
    await abortAll();
    const names = missing.map((m) => m.journal).join(', ');
    return fail(missing, missing.length > 0 ? `${missing.length} of ${agents.length} agents did not prepare: ${names}` : 'no agent took part', cut);
  }
  // Every member is frozen now, at one instant: the cut (see agent/ship/checkpoint-service).
  const committed = await Promise.all(members.map(async (j) => ({ j, r: await ask(nc, stream, j, { op: 'commit', name, id, cut }, DEFAULTS.checkpoint.entryWaitMs + timeoutMs) })));
  const refused = committed.filter((c) => !c.r.ok).map((c) => ({ journal: c.j, why: c.r.ok ? '' : c.r.why }));
  // The members that refused thaw now rather than at their deadline (one that committed ignores it).
  if (refused.length > 0) await abortAll();
  if (refused.length > 0) return fail(refused, `${refused.length} of ${members.length} agents refused the commit: ${refused.map((m) => m.journal).join(', ')}`, cut);
  const frozenMs = Math.max(0, ...committed.map((c) => (c.r.ok ? c.r.frozenMs ?? 0 : 0)));
  await writeState(kv, 'checkpoint', name, { ...record, state: 'taken', finished: Date.now(), cut, frozenMs });
  console.log(`checkpoint ${name} taken: ${cut.length} journals, changes held at most ${frozenMs} ms, in ${Date.now() - started} ms`);
  for (const c of cut) console.log(`  journal ${c.j}: ${c.e}.${c.s}`);
  return true;
}
