import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { encodeEntry } from '../lib/codec';
import type { EntryHeader } from '../lib/entry';
import { ensureStream } from '../lib/nats';
import { journalSubject, msgId } from '../lib/subjects';
import { makePair, runCli, type Pair } from './helpers/pair';
import { diffTrees } from './helpers/tree';

const cli = (pair: Pair, args: string[]) => runCli(args, { UNDERSTUDY_NATS_URL: pair.server.url, UNDERSTUDY_ROOTS: '' });

async function publish(pair: Pair, entries: { header: EntryHeader; data?: Buffer; raw?: Buffer }[]): Promise<void> {
  const nc = await connect({ servers: pair.server.url });
  await ensureStream(await jetstreamManager(nc), 'UNDERSTUDY');
  const js = jetstream(nc);
  for (const e of entries) {
    await js.publish(journalSubject('UNDERSTUDY', e.header.j), e.raw ?? encodeEntry(e.header, e.data), { msgID: msgId(e.header.j, e.header.e, e.header.s) });
  }
  await nc.close();
}

const head = (s: number, p: string) => ({ j: 'app', e: 1, s, t: Date.now(), r: 'data', p });

test.serial('replay --drain, status and inspect from the command line', async (t) => {
  const pair = await makePair('cli');
  t.teardown(() => pair.close());
  const run = await pair.runApp({
    code: `const fs = require('fs'); fs.mkdirSync(${JSON.stringify(pair.primary)} + '/d'); fs.writeFileSync(${JSON.stringify(pair.primary)} + '/d/f.txt', 'hi');`,
  });
  t.is(run.code, 0, run.stderr);
  const replay = await cli(pair, ['replay', '--root', `data=${pair.standby}`, '--state', pair.state, '--drain']);
  t.is(replay.code, 0, replay.stderr);
  t.regex(replay.stderr, /applied 2 entries/);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  const inspect = await cli(pair, ['inspect']);
  t.is(inspect.code, 0, inspect.stderr);
  t.regex(inspect.stdout, /^#\d+ app \d+\.1 \S+ mkdir data\/d mode=0755$/m);
  t.regex(inspect.stdout, /^#\d+ app \d+\.2 \S+ put data\/d\/f\.txt mode=0644 \[2 bytes\]$/m);
  const json = await cli(pair, ['inspect', '--json']);
  t.deepEqual(json.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { op: string }).op), ['mkdir', 'put']);
  const status = await cli(pair, ['status', '--json']);
  t.is(status.code, 0, status.stderr);
  const rows = (JSON.parse(status.stdout) as { journals: { journal: string; stream_last_seq: number; applied_seq: number; lag_entries: number }[] }).journals;
  t.like(rows.find((r) => r.journal === 'app'), { stream_last_seq: 2, applied_seq: 2, lag_entries: 0 });
  t.is((await cli(pair, ['status', '--max-lag', '0'])).code, 0);
});

test.serial('status exits non-zero when a journal lags more than --max-lag', async (t) => {
  const pair = await makePair('lag');
  t.teardown(() => pair.close());
  await publish(pair, [1, 2, 3].map((s) => ({ header: { ...head(s, `f${s}`), op: 'put', mode: 0o644 }, data: Buffer.from('x') })));
  const status = await cli(pair, ['status', '--max-lag', '2']);
  t.is(status.code, 1, status.stdout + status.stderr);
  t.regex(status.stdout, /^app\s.*\s3\s+-\s+3\s/m);
});

test.serial('a hostile or broken entry stops --drain with a non-zero exit naming the entry, and writes nothing outside', async (t) => {
  const pair = await makePair('hostile');
  t.teardown(() => pair.close());
  const outside = path.join(pair.dir, 'escaped.txt');
  await publish(pair, [
    { header: { ...head(1, 'ok.txt'), op: 'put', mode: 0o644 }, data: Buffer.from('fine') },
    { header: { ...head(2, '../escaped.txt'), op: 'put', mode: 0o644 }, data: Buffer.from('evil') },
  ]);
  const first = await cli(pair, ['replay', '--root', `data=${pair.standby}`, '--state', pair.state, '--drain']);
  t.is(first.code, 1);
  t.regex(first.stderr, /entry app\.1\.2 \(put data\/\.\.\/escaped\.txt, stream message 2\) refused: path "\.\.\/escaped\.txt" has a "\.\." segment; quarantined in \S+000000000002\.entry; stopping/);
  t.false(fs.existsSync(outside));
  t.is(fs.readFileSync(path.join(pair.standby, 'ok.txt'), 'utf8'), 'fine', 'what came before was applied and kept');

  const pair2 = await makePair('broken');
  t.teardown(() => pair2.close());
  const good = encodeEntry({ ...head(1, 'a'), op: 'put', mode: 0o644 }, Buffer.from('abc'));
  good[good.length - 6] ^= 1;
  await publish(pair2, [{ header: { ...head(1, 'a'), op: 'put', mode: 0o644 }, raw: good }]);
  const second = await cli(pair2, ['replay', '--root', `data=${pair2.standby}`, '--state', pair2.state, '--drain']);
  t.is(second.code, 1);
  t.regex(second.stderr, /stream message 1 \(understudy\.understudy\.journal\.app\): entry checksum mismatch/);
  t.deepEqual(fs.readdirSync(pair2.standby), []);
});

test.serial('a missing entry in the middle of a journal is reported as a gap, not skipped', async (t) => {
  const pair = await makePair('gap');
  t.teardown(() => pair.close());
  await publish(pair, [1, 2, 4, 5].map((s) => ({ header: { ...head(s, `f${s}`), op: 'put', mode: 0o644 }, data: Buffer.from('x') })));
  const replay = await cli(pair, ['replay', '--root', `data=${pair.standby}`, '--state', pair.state, '--drain']);
  t.is(replay.code, 1);
  t.regex(replay.stderr, /journal app: entries 3\.\.3 are missing from the stream; 2 later entries wait for them/);
  t.deepEqual(fs.readdirSync(pair.standby).sort(), ['f1', 'f2']);
});

test.serial('checkpoint without a NAME, or with a bad flag, is refused with what was wrong', async (t) => {
  const pair = await makePair('nb');
  t.teardown(() => pair.close());
  const none = await cli(pair, ['checkpoint']);
  t.is(none.code, 2);
  t.regex(none.stderr, /checkpoint takes one NAME, got 0/);
  const every = await cli(pair, ['checkpoint', 'n', '--every', 'often']);
  t.is(every.code, 2);
  t.regex(every.stderr, /--every often is not a duration/);
});
