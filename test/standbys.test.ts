import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { openStateKv } from '../lib/nats';
import { readState } from '../lib/state-bucket';
import { makePair, runCli } from './helpers/pair';
import { diffTrees } from './helpers/tree';

test.serial('each standby leaves its committed position under its name; status shows both, and how far behind the one that stopped is', async (t) => {
  const pair = await makePair('standbys');
  t.teardown(() => pair.close());
  const second = { standby: path.join(pair.dir, 'standby-b2'), state: path.join(pair.dir, 'state-b2') };
  fs.mkdirSync(second.standby);
  t.is((await pair.runApp({ code: `for (let i = 0; i < 5; i++) require('fs').writeFileSync(${JSON.stringify(pair.primary)} + '/f' + i, 'x' + i);` })).code, 0);
  const env = { UNDERSTUDY_NATS_URL: pair.server.url };
  const drain = (dir: string, state: string, name: string) => runCli(['replay', '--drain', '--root', `data=${dir}`, '--state', state, '--standby', name], env);
  t.is((await drain(pair.standby, pair.state, 'b1')).code, 0);
  t.is((await drain(second.standby, second.state, 'b2')).code, 0);
  // b2 stops here; b1 applies what comes next.
  t.is((await pair.runApp({ code: `for (let i = 0; i < 3; i++) require('fs').writeFileSync(${JSON.stringify(pair.primary)} + '/g' + i, 'y' + i);` })).code, 0);
  t.is((await drain(pair.standby, pair.state, 'b1')).code, 0);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);

  const nc = await connect({ servers: pair.server.url });
  t.teardown(() => nc.close());
  const kv = await openStateKv(nc, 'UNDERSTUDY');
  const [b1, b2] = [await readState(kv, 'standby', 'b1'), await readState(kv, 'standby', 'b2')];
  const committed = (state: string) => JSON.parse(fs.readFileSync(path.join(state, 'committed.json'), 'utf8').split('\n')[0]) as { streamSeq: number; journals: Record<string, { e: number; s: number }> };
  // What each record says is what its standby's last commit made durable, nothing more.
  t.is(b1?.streamSeq, committed(pair.state).streamSeq);
  t.is(b2?.streamSeq, committed(second.state).streamSeq);
  t.is(b1?.journals.app?.s, 8);
  t.is(b2?.journals.app?.s, 5);
  t.true((b1?.streamSeq ?? 0) > (b2?.streamSeq ?? 0));

  const text = await runCli(['status'], env);
  t.is(text.code, 0, text.stderr);
  const last = b1!.streamSeq;
  // Drains end: both are stopped a few seconds later; just now they are at the stream's end or behind it.
  t.regex(text.stdout, new RegExp(`^standby b1 on \\S+: (streaming|STOPPED since \\S+ \\(it holds the stream and spools back\\)); committed stream position ${last} of ${last} \\(0 behind, about 0\\.0 KiB, 0 s\\); may fall [\\d.]+ [KMG]iB further behind before it is lost; last active [\\d.]+ s ago$`, 'm'));
  t.regex(text.stdout, new RegExp(`^standby b2 on \\S+: (streaming|STOPPED since \\S+ \\(it holds the stream and spools back\\)); committed stream position ${b2!.streamSeq} of ${last} \\(${last - b2!.streamSeq} behind, about [\\d.]+ KiB, [\\d.]+ s\\); may fall`, 'm'));
  const json = JSON.parse((await runCli(['status', '--json'], env)).stdout) as { standbys: { name: string; committed_seq: number; lag_entries: number; lag_bytes: number }[] };
  t.deepEqual(json.standbys.map((s) => [s.name, s.committed_seq, s.lag_entries]), [['b1', last, 0], ['b2', b2!.streamSeq, last - b2!.streamSeq]]);
  t.true(json.standbys[1].lag_bytes > 0, 'b2 holds back the bytes of what it has not applied');

  const bad = await runCli(['replay', '--drain', '--root', `data=${pair.standby}`, '--state', pair.state, '--standby', 'b.1'], env);
  t.is(bad.code, 2, bad.stderr);
  t.regex(bad.stderr, /--standby "b\.1" must be 1-64 letters, digits, '-' or '_'/);
});
