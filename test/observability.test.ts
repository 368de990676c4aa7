import test from 'ava';
import { parseRoots } from '../lib/roots';
import { Replayer } from '../replayer/replayer';
import { freePort } from './helpers/nats-server';
import { spawnSync } from 'node:child_process';
import { connect } from '@nats-io/transport-node';
import { DiscardPolicy, jetstreamManager } from '@nats-io/jetstream';
import { CLI, makePair } from './helpers/pair';
import { diffTrees } from './helpers/tree';

test.serial('the replayer serves Prometheus metrics: positions of agent and standby, lag, counters', async (t) => {
  const pair = await makePair('metrics');
  t.teardown(() => pair.close());
  const port = await freePort();
  const ac = new AbortController();
  const replaying = new Replayer({
    nats: { url: pair.server.url, replicas: 1 }, stream: 'UNDERSTUDY', roots: parseRoots(`data=${pair.standby}`), stateDir: pair.state,
    drain: false, log: () => undefined, metricsPort: port, standby: 'm1',
  }).run(ac.signal);
  const run = await pair.runApp({ code: `for (let i = 0; i < 25; i++) require('fs').writeFileSync(${JSON.stringify(pair.primary)} + '/f' + i, 'x');` });
  t.is(run.code, 0);
  let text = '';
  for (let i = 0; i < 100; i++) {
    text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    if (/understudy_journal_applied_seq\{journal="app"\} 25/.test(text) && /understudy_standby_lag_entries\{standby="m1"\} 0/.test(text)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  ac.abort();
  await replaying;
  t.regex(text, /^# TYPE understudy_replayer_applied_entries_total counter$/m);
  t.regex(text, /^understudy_replayer_applied_entries_total 25$/m);
  t.regex(text, /^understudy_journal_applied_seq\{journal="app"\} 25$/m);
  t.regex(text, /^understudy_journal_agent_seq\{journal="app"\} 25$/m);
  t.regex(text, /^understudy_journal_lag_entries\{journal="app"\} 0$/m);
  t.regex(text, /^understudy_journal_heartbeat_age_seconds\{journal="app"\} [\d.]+$/m);
  t.regex(text, /^understudy_journal_dropped_changes\{journal="app"\} 0$/m);
  t.regex(text, /^understudy_stream_max_bytes 8589934592$/m);
  // This standby as a slot: streaming, nothing behind, room to fall behind before it is lost.
  t.regex(text, /^understudy_standby_state\{standby="m1",state="streaming"\} 1$/m);
  t.regex(text, /^understudy_standby_state\{standby="m1",state="lost"\} 0$/m);
  t.regex(text, /^understudy_standby_lag_entries\{standby="m1"\} 0$/m);
  t.regex(text, /^understudy_standby_committed_seq\{standby="m1"\} [1-9]\d*$/m);
  t.regex(text, /^understudy_standby_safe_bytes\{standby="m1"\} 6442450944$/m, '75 % of 8 GiB');
  const bytes = Number(/^understudy_stream_bytes (\d+)$/m.exec(text)?.[1]);
  t.true(bytes > 25 * 100, `the stream holds the 25 entries (${bytes} bytes)`);
});

test.serial('a full spool drops changes: said once, counted in status, and the application never notices', async (t) => {
  const pair = await makePair('full');
  t.teardown(() => pair.close());
  // No replayer runs, so nothing is applied and the spool is never trimmed.
  const run = await pair.runApp({
    env: { UNDERSTUDY_SPOOL_MAX_BYTES: '20000' },
    code: `for (let i = 0; i < 20; i++) require('fs').writeFileSync(${JSON.stringify(pair.primary)} + '/f' + i, Buffer.alloc(3000)); console.log('all written');`,
  });
  t.is(run.code, 0);
  t.is(run.stdout.trim(), 'all written');
  t.is(run.stderr.match(/the spool holds \d+ bytes the standby has not applied .*changes are NOT replicated/g)?.length, 1);
  const status = spawnSync(process.execPath, [CLI, 'status', '--json'], { env: { ...process.env, UNDERSTUDY_NATS_URL: pair.server.url }, encoding: 'utf8' });
  const row = (JSON.parse(status.stdout) as { journals: { journal: string; dropped: number; agent_last_seq: number }[] }).journals.find((r) => r.journal === 'app');
  t.true((row?.dropped ?? 0) > 0, JSON.stringify(row));
  t.is((row?.dropped ?? 0) + (row?.agent_last_seq ?? 0), 20);
});

test.serial('status says how full the stream is, and what comes when it is nearly full', async (t) => {
  const pair = await makePair('stream-use');
  t.teardown(() => pair.close());
  const run = await pair.runApp({ code: `require('fs').writeFileSync(${JSON.stringify(pair.primary)} + '/f', Buffer.alloc(3000));` });
  t.is(run.code, 0, run.stderr);
  const env = { ...process.env, UNDERSTUDY_NATS_URL: pair.server.url };
  const json = spawnSync(process.execPath, [CLI, 'status', '--json'], { env, encoding: 'utf8' });
  const stream = (JSON.parse(json.stdout) as { stream: { name: string; messages: number; bytes: number; max_bytes: number; used_pct: number } }).stream;
  t.is(stream.name, 'UNDERSTUDY');
  t.is(stream.messages, 1);
  t.true(stream.bytes > 3000);
  t.is(stream.max_bytes, 8 * 1024 ** 3);
  t.is(stream.used_pct, 0);
  const text = spawnSync(process.execPath, [CLI, 'status'], { env, encoding: 'utf8' });
  t.regex(text.stdout, /^stream UNDERSTUDY: 1 messages, 3\.\d KiB of 8\.0 GiB \(0 %\)$/m);
  // A stream made by hand with a small max_bytes, nearly full: the line says what comes next.
  const nc = await connect({ servers: pair.server.url });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await jsm.streams.update('UNDERSTUDY', { max_bytes: 3400 });
  const full = spawnSync(process.execPath, [CLI, 'status'], { env, encoding: 'utf8' });
  t.regex(full.stdout, /^stream UNDERSTUDY: 1 messages, 3\.\d KiB of 3\.3 KiB \(9\d(\.\d)? %\); when full it refuses entries and agents spool them: a standby holds it back \(see the standby lines\), or no running standby may trim it$/m);
});

test.serial('a stream that refuses entries (full) is said once by the agent, and in words by status, until it takes them again', async (t) => {
  const pair = await makePair('stream-refuses');
  t.teardown(() => pair.close());
  // The stream the agent would make, but with room for a few entries only (discard new: refuses).
  const nc = await connect({ servers: pair.server.url });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'UNDERSTUDY', subjects: ['understudy.understudy.journal.*'], discard: DiscardPolicy.New, max_bytes: 20_000, duplicate_window: 600_000_000_000 });
  const run = await pair.runApp({
    env: { UNDERSTUDY_EXIT_TIMEOUT_MS: '2500' },
    code: `for (let i = 0; i < 40; i++) require('fs').writeFileSync(${JSON.stringify(pair.primary)} + '/f' + i, Buffer.alloc(4096, i));`,
  });
  t.is(run.code, 0, 'the application never notices');
  const said = run.stderr.split('\n').filter((l) => /refuses its entries/.test(l));
  t.is(said.length, 1, run.stderr);
  t.regex(said[0], /journal "app": stream UNDERSTUDY refuses its entries \(maximum bytes exceeded\); they stay spooled, the standby falls behind/);
  t.notRegex(run.stderr, /cannot reach JetStream/, 'a refusal is not an unreachable server');
  const env = { ...process.env, UNDERSTUDY_NATS_URL: pair.server.url };
  const text = spawnSync(process.execPath, [CLI, 'status', '--max-lag', '1000'], { env, encoding: 'utf8' });
  t.is(text.status, 1, 'monitoring is told, whatever the lag');
  t.regex(text.stdout, /^journal app: THE STREAM REFUSES ITS ENTRIES since \S+ \(maximum bytes exceeded\): they wait in the agent's spool \(\d+ not shipped\)/m);
  const json = JSON.parse(spawnSync(process.execPath, [CLI, 'status', '--json'], { env, encoding: 'utf8' }).stdout) as { journals: { journal: string; stream_refuses?: { reason: string } }[] };
  t.is(json.journals.find((j) => j.journal === 'app')?.stream_refuses?.reason, 'maximum bytes exceeded');
  // Room again: the next process ships what waited, and its heartbeat no longer says refused.
  await jsm.streams.update('UNDERSTUDY', { max_bytes: 64 * 1024 * 1024 });
  const next = await pair.runApp({ code: `require('fs').writeFileSync(${JSON.stringify(pair.primary)} + '/last', 'x');` });
  t.is(next.code, 0, next.stderr);
  t.notRegex(next.stderr, /refuses/);
  const after = spawnSync(process.execPath, [CLI, 'status'], { env, encoding: 'utf8' });
  t.notRegex(after.stdout, /REFUSES/, after.stdout);
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});
