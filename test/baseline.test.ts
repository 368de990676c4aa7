import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EntryHeader } from '../lib/entry';
import { makePair, runCli, type Pair } from './helpers/pair';
import { freePort } from './helpers/nats-server';
import { publish } from './helpers/publish';
import { diffTrees, readTree } from './helpers/tree';

/** A tree with what a baseline must carry: nested directories, many files, links, an empty file, odd modes, one large file. */
function buildTree(root: string, files: number): void {
  for (let i = 0; i < files; i++) {
    const dir = path.join(root, `d${i % 37}`, `e${i % 5}`);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `f${i}.txt`), `file ${i}\n`.repeat(i % 13));
  }
  fs.writeFileSync(path.join(root, 'empty'), '');
  fs.mkdirSync(path.join(root, 'empty-dir'));
  fs.writeFileSync(path.join(root, 'secret'), 'only me');
  fs.chmodSync(path.join(root, 'secret'), 0o600);
  fs.mkdirSync(path.join(root, 'locked'), { mode: 0o750 });
  fs.writeFileSync(path.join(root, 'big.bin'), Buffer.alloc(3 * 1024 * 1024 + 17, 7));
  fs.symlinkSync('d1/e1/f1.txt', path.join(root, 'relative-link'));
  fs.symlinkSync('/etc/hostname', path.join(root, 'absolute-link'));
  fs.symlinkSync('nowhere', path.join(root, 'dangling-link'));
}

function baselineCli(pair: Pair, extra: string[] = []): ReturnType<typeof runCli> {
  return runCli(['baseline', '--root', `data=${pair.primary}`, '--nats', pair.server.url, ...extra], { UNDERSTUDY_SPOOL_DIR: pair.spool });
}

test.serial('baseline: a tree of a few thousand objects reaches an empty standby complete and identical', async (t) => {
  const pair = await makePair('baseline');
  t.teardown(() => pair.close());
  buildTree(pair.primary, 3000);
  const r = await baselineCli(pair);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /baseline: \d+\/\d+ objects \(100%\).*all in the stream/);
  const s = await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.true(readTree(pair.standby).size > 3000);
  t.is(s.stale, 0);
  // status shows when the last baseline ran and what it carried.
  const st = await runCli(['status', '--nats', pair.server.url, '--json']);
  const report = (JSON.parse(st.stdout) as { baselines: { name: string; state: string; objects: number }[] }).baselines;
  t.like(report[0], { name: 'baseline', state: 'done' });
  t.true(report[0].objects > 3000);
});

test.serial('baseline while an application under the agent rewrites the same files: the standby ends identical, never older', async (t) => {
  const pair = await makePair('baseline-live');
  t.teardown(() => pair.close());
  buildTree(pair.primary, 600);
  const stopFile = path.join(pair.dir, 'stop');
  const app = pair.runApp({
    code: `const fs = require('fs'); const r = ${JSON.stringify(pair.primary)}; let i = 0;
      const t = setInterval(() => {
        for (let k = 0; k < 2; k++, i++) fs.writeFileSync(r + '/d' + (i % 37) + '/e' + (i % 5) + '/f' + (i % 600) + '.txt', 'rewritten ' + i);
        fs.appendFileSync(r + '/empty', i + '\\n');
        if (i % 50 === 0) fs.rmSync(r + '/d' + (i % 37) + '/e' + (i % 5) + '/gone-' + (i % 3), { force: true, recursive: true });
        if (fs.existsSync(${JSON.stringify(stopFile)})) clearInterval(t);
      }, 5);`,
  });
  await new Promise((r) => setTimeout(r, 300));
  // The first baseline cannot reach NATS: its snapshots wait in its spool while the application's
  // newer changes reach the stream, and ship only with the second run, after them.
  const first = await baselineCli(pair, ['--nats', `nats://127.0.0.1:${await freePort()}`, '--timeout-s', '1']);
  t.is(first.code, 1);
  t.regex(first.stderr, /entries not in JetStream after 1 s: they stay spooled/);
  await new Promise((r) => setTimeout(r, 500));
  const second = await baselineCli(pair);
  fs.writeFileSync(stopFile, '');
  const a = await app;
  t.is(second.code, 0, second.stderr);
  t.is(a.code, 0, a.stderr);
  const s = await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.true(s.stale > 0, 'the late snapshots were recognised as older and skipped');
  t.log(`${s.applied} entries applied; ${s.stale} baseline snapshots skipped as older than a change already applied`);
});

/** Entries put straight into the stream, so that a snapshot arrives after a newer change to its object. */
function entry(s: number, t: number, op: Partial<EntryHeader> & { p: string }, b?: number): { header: EntryHeader; data?: Buffer } {
  const header = { j: op.j ?? 'live', e: 1, s, t, r: 'data', b, ...op } as EntryHeader;
  return { header, data: header.op === 'put' ? Buffer.from(`${header.j} ${t}`) : undefined };
}

test.serial('a snapshot older than a change already applied is skipped, across a replayer restart too', async (t) => {
  const pair = await makePair('versions');
  t.teardown(() => pair.close());
  await publish(pair.server.url, [
    entry(1, 1000, { op: 'mkdir', mode: 0o755, p: 'dir' }),
    entry(2, 2000, { op: 'put', mode: 0o644, p: 'dir/newer' }),
    entry(3, 2000, { op: 'mkdir', mode: 0o755, p: 'removed' }),
    entry(4, 2500, { op: 'rm', p: 'removed' }),
  ]);
  await pair.drain();
  // Read by a baseline before those changes, arriving after them (and after a restart).
  await publish(pair.server.url, [
    entry(1, 3000, { j: 'snap', op: 'put', mode: 0o644, p: 'dir/newer' }, 1500),
    entry(2, 3000, { j: 'snap', op: 'mkdir', mode: 0o755, p: 'removed' }, 2400),
    entry(3, 3000, { j: 'snap', op: 'put', mode: 0o644, p: 'removed/child' }, 2400),
    entry(4, 3000, { j: 'snap', op: 'put', mode: 0o644, p: 'dir/untouched' }, 2400),
    entry(5, 3000, { j: 'snap', op: 'put', mode: 0o644, p: 'dir/newer' }, 2600),
  ]);
  const s = await pair.drain();
  t.is(s.stale, 3);
  t.false(fs.existsSync(path.join(pair.standby, 'removed')));
  t.is(fs.readFileSync(path.join(pair.standby, 'dir/untouched'), 'utf8'), 'snap 3000');
  // Read after the change: newer, so applied.
  t.is(fs.readFileSync(path.join(pair.standby, 'dir/newer'), 'utf8'), 'snap 3000');
});

test('baseline refuses bad flags with a clear error', async (t) => {
  const r = await runCli(['baseline', '--root', 'data=relative/dir']);
  t.is(r.code, 2);
  t.regex(r.stderr, /relative\/dir/);
  const r2 = await runCli(['baseline']);
  t.is(r2.code, 2);
  t.regex(r2.stderr, /no root given/);
});

