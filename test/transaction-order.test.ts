import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EntryHeader } from '../lib/entry';
import { makePair, runCli } from './helpers/pair';
import { publish, type Crafted } from './helpers/publish';
import { startStandby, type StandbyProc } from './helpers/standby-proc';

/** Transactions applied whole on a real nats-server, with `understudy replay` as a child process on real disk. */

const put = (s: number, p: string, content: string, x?: string): Crafted => ({ header: { j: 'app', e: 1, s, t: Date.now(), r: 'data', p, op: 'put', mode: 0o644, ...(x === undefined ? {} : { x }) } as EntryHeader, data: Buffer.from(content) });
const tx = (s: number, ev: 'begin' | 'end', id = 'tx1'): Crafted => ({ header: { j: 'app', e: 1, s, t: Date.now(), r: '', p: 'tx', op: 'tx', id, ev } as EntryHeader });

/** Journal app's position as a file under --state records it (undefined before its first). */
function position(state: string, file: 'positions.json' | 'committed.json'): number | undefined {
  try {
    const text = fs.readFileSync(path.join(state, file), 'utf8').split('\n')[0];
    return text === '' ? undefined : (JSON.parse(text) as { journals: Record<string, { s: number }> }).journals.app?.s;
  } catch {
    return undefined;
  }
}

const N = 2000;
/** The transaction's files on the standby. */
const count = (dir: string): number => fs.readdirSync(path.join(dir, 'tx')).length;

test('a transaction of 2,000 entries with the replayer SIGKILLed in the middle of applying it: completed at restart from where it stopped; no recorded position is ever inside it', async (t) => {
  const pair = await makePair('tx-kill');
  t.teardown(() => pair.close());
  // 1: before; 2: begin; 3-5: a file renamed, then made again under its old name (applied twice
  // from the start, the rename would move the new one); 6..2005: the transaction's files (16 KiB
  // each, so applying takes a while); 2006: end; 2007: after.
  const body = 'x'.repeat(16 * 1024);
  const entries: Crafted[] = [put(1, 'before.txt', 'before'), tx(2, 'begin'), put(3, 'r.txt', 'first', 'tx1'),
    { header: { j: 'app', e: 1, s: 4, t: Date.now(), r: 'data', p: 'r.txt', op: 'rename', toRoot: 'data', to: 'moved.txt', x: 'tx1' } as EntryHeader }, put(5, 'r.txt', 'second', 'tx1')];
  for (let i = 0; i < N; i++) entries.push(put(6 + i, `tx/f${i}`, body, 'tx1'));
  const END = 6 + N;
  entries.push(tx(END, 'end'), put(END + 1, 'after.txt', 'after'));
  await publish(pair.server.url, entries);

  // The position a replayer records is before the transaction or past it, never inside; past it, the tree has all of it.
  const observe = (proc: StandbyProc, where: string): void => {
    for (const file of ['positions.json', 'committed.json'] as const) {
      const s = position(proc.state, file);
      if (s === undefined) continue;
      t.true(s === 1 || s >= END, `${where}: ${file} records app at ${s}, inside the transaction`);
      if (s >= END) t.is(count(proc.dir), N, `${where}: ${file} is past the transaction while the tree holds part of it`);
    }
  };

  // Kill a replayer while it is applying the transaction: some of its files there, not all.
  let killedAt: number | undefined;
  let victim: StandbyProc | undefined;
  for (let attempt = 0; attempt < 5 && killedAt === undefined; attempt++) {
    const proc = startStandby(pair.dir, `s${attempt}`, pair.server.url);
    t.teardown(() => proc.kill());
    fs.mkdirSync(path.join(proc.dir, 'tx'), { recursive: true });
    const until = Date.now() + 60_000;
    while (Date.now() < until) {
      const n = count(proc.dir);
      if (n > 0 && n < N) {
        await proc.kill();
        killedAt = count(proc.dir);
        victim = proc;
        break;
      }
      if (n === N) break; // applied between two looks: try again with a fresh standby
      await new Promise((r) => setImmediate(r));
    }
    if (killedAt === undefined) await proc.kill();
  }
  if (victim === undefined || killedAt === undefined) return t.fail('never saw the replayer in the middle of the transaction in 5 tries');
  t.log(`killed with ${killedAt} of ${N} files of the transaction applied`);
  t.true(killedAt > 0 && killedAt < N);
  observe(victim, 'after the kill');
  t.is(position(victim.state, 'positions.json'), 1, 'the position stays before the transaction');

  // Restarted on the same --state and tree: it applies the transaction again, whole, and goes on.
  const again = startStandby(pair.dir, victim.name, pair.server.url);
  t.teardown(() => again.kill());
  const until = Date.now() + 60_000;
  while ((position(again.state, 'committed.json') ?? 0) < END + 1) {
    if (Date.now() > until) return t.fail(`the restarted replayer never committed past the transaction; it logged:\n${again.log()}`);
    observe(again, 'after the restart');
    await new Promise((r) => setTimeout(r, 5));
  }
  observe(again, 'at the end');
  t.is(count(again.dir), N);
  t.is(fs.readFileSync(path.join(again.dir, 'tx', 'f1999'), 'utf8'), body);
  t.is(fs.readFileSync(path.join(again.dir, 'after.txt'), 'utf8'), 'after');
  t.is(fs.readFileSync(path.join(again.dir, 'moved.txt'), 'utf8'), 'first', 'what was applied before the kill is not applied again on top of what came after it');
  t.is(fs.readFileSync(path.join(again.dir, 'r.txt'), 'utf8'), 'second');
  t.regex(again.log(), /journal app: going on with the transaction a stopped replayer was applying, after 1\.\d+ \(\d+ of 2005 entries applied before\)/);
  t.is(await again.stop(), 0);
});

test('a transaction whose end never comes: none of it applied, status says so and that it may never end, promote sets it aside', async (t) => {
  const pair = await makePair('tx-open');
  t.teardown(() => pair.close());
  const entries: Crafted[] = [put(1, 'before.txt', 'before'), tx(2, 'begin')];
  for (let i = 0; i < 10; i++) entries.push(put(3 + i, `tx-f${i}`, `in the transaction ${i}`, 'tx1'));
  await publish(pair.server.url, entries);
  const proc = startStandby(pair.dir, 'b1', pair.server.url);
  t.teardown(() => proc.kill());
  const env = { UNDERSTUDY_NATS_URL: pair.server.url };
  let row: { standby: string; staging: { journal: string; transactions: string[]; since: string; entries: number; may_never_end?: string }[] } | undefined;
  const until = Date.now() + 30_000;
  while (row === undefined) {
    if (Date.now() > until) return t.fail(`status never showed the staged transaction; the standby logged:\n${proc.log()}`);
    const out = await runCli(['status', '--json'], env);
    const report = JSON.parse(out.stdout) as { standbys: { name: string; staging?: NonNullable<typeof row>['staging'] }[] };
    const s = report.standbys.find((x) => x.name === 'b1' && x.staging !== undefined);
    if (s !== undefined) row = { standby: s.name, staging: s.staging! };
    else await new Promise((r) => setTimeout(r, 200));
  }
  t.is(row.staging.length, 1);
  t.like(row.staging[0], { journal: 'app', transactions: ['tx1'], entries: 11, may_never_end: 'its agent has no heartbeat' });
  const text = await runCli(['status'], env);
  t.regex(text.stdout, /standby b1: journal app is inside transaction tx1 since \S+: 11 entries staged, none applied until it ends; IT MAY NEVER END \(its agent has no heartbeat\): a promotion sets its entries aside/);
  t.deepEqual(fs.readdirSync(proc.dir).sort(), ['before.txt'], 'none of the transaction is applied');
  t.is(await proc.stop(), 0);

  const promoted = await runCli(['promote', '--root', `data=${proc.dir}`, '--state', proc.state, '--standby', 'b1', '--json'], env);
  t.is(promoted.code, 0, promoted.stderr);
  const report = JSON.parse(promoted.stdout) as { journals: { journal: string; applied?: string; set_aside?: { ids: string[]; entries: number; file: string }[] }[] };
  const app = report.journals.find((j) => j.journal === 'app');
  t.is(app?.applied, '1.1');
  t.is(app?.set_aside?.length, 1);
  const aside = app!.set_aside![0];
  t.deepEqual({ ids: aside.ids, entries: aside.entries }, { ids: ['tx1'], entries: 11 });
  const lines = fs.readFileSync(aside.file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { header: EntryHeader; data: string });
  t.deepEqual(lines.map((l) => l.header.s), Array.from({ length: 11 }, (_, i) => 2 + i));
  t.is(Buffer.from(lines[10].data, 'base64').toString(), 'in the transaction 9');
  t.true(aside.file.startsWith(path.join(proc.state, 'set-aside')));
  t.deepEqual(fs.readdirSync(proc.dir).sort(), ['before.txt'], 'promote applied none of it');
});
