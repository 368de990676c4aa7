import test from 'ava';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { encodeBatch } from '../lib/batch';
import { decodeEntry, encodeEntry } from '../lib/codec';
import type { EntryHeader } from '../lib/entry';
import { ApplyError } from '../lib/errors';
import { parseRoots } from '../lib/roots';
import { Replayer } from '../replayer/replayer';
import { makePair } from './helpers/pair';
import { publish } from './helpers/publish';
import { SmallDisk } from './helpers/small-disk';
import { diffTrees } from './helpers/tree';

const head = (s: number, p: string) => ({ j: 'app', e: 1, s, t: Date.now(), r: 'data', p });
const put = (s: number, p: string, text: string) => ({ header: { ...head(s, p), op: 'put', mode: 0o644 } as EntryHeader, data: Buffer.from(text) });

test.serial('--on-bad-entry=skip quarantines bad entries and goes on with the rest', async (t) => {
  const pair = await makePair('skip');
  t.teardown(() => pair.close());
  await publish(pair.server.url, [
    put(1, 'a.txt', 'a'),
    put(2, '../../etc/cron.d/evil', 'evil'),
    // Not an entry: it takes no place in the journal, whatever its message id claims.
    { header: head(3, 'x') as EntryHeader, raw: Buffer.from('not an entry at all'), id: 'garbage-1' },
    put(3, 'b.txt', 'b'),
  ]);
  const logs: string[] = [];
  const s = await pair.drain(undefined, { onBadEntry: 'skip', log: (l) => logs.push(l) });
  t.is(s.applied, 2);
  t.is(s.skipped, 2);
  t.deepEqual(fs.readdirSync(pair.standby).sort(), ['a.txt', 'b.txt']);
  const q = fs.readdirSync(path.join(pair.state, 'quarantine')).sort();
  t.deepEqual(q, ['000000000002.entry', '000000000002.json', '000000000003.entry', '000000000003.json']);
  t.regex(fs.readFileSync(path.join(pair.state, 'quarantine', '000000000003.json'), 'utf8'), /neither an entry \(USJ1\), a batch \(USB1\) nor spool frames/);
  t.is(logs.length, 3);
  t.regex(logs[0], /skipped: entry app\.1\.2 .* refused: path .* has a "\.\." segment/);
  // What the refused entry would have changed is in doubt, and said so: the standby may lack it.
  t.regex(logs[1], /^data\/\.\.\/\.\.\/etc\/cron\.d\/evil may differ from the primary: app\.1\.2 \(put\) was refused and passed over: /);
  t.is(s.inDoubt, 1);
});

test.serial('--on-bad-entry=skip passes over one refused entry of a batch and applies the others', async (t) => {
  const pair = await makePair('skip-batch');
  t.teardown(() => pair.close());
  const entries = [put(1, 'a.txt', 'a'), put(2, '../escape.txt', 'evil'), put(3, 'c.txt', 'c')];
  const raw = encodeBatch(entries.map((e) => encodeEntry(e.header, e.data)));
  await publish(pair.server.url, [{ header: entries[0].header, raw, id: 'app.1.1-3' }, put(4, 'd.txt', 'd')]);
  const s = await pair.drain(undefined, { onBadEntry: 'skip' });
  t.is(s.applied, 3);
  t.is(s.skipped, 1);
  t.deepEqual(fs.readdirSync(pair.standby).sort(), ['a.txt', 'c.txt', 'd.txt']);
  t.false(fs.existsSync(path.join(pair.dir, 'escape.txt')));
  t.deepEqual(fs.readdirSync(path.join(pair.state, 'quarantine')).sort(), ['000000000001.1.entry', '000000000001.1.json']);
  t.deepEqual(decodeEntry(fs.readFileSync(path.join(pair.state, 'quarantine', '000000000001.1.entry'))).header, entries[1].header);
});

test.serial('entries that decode but ask for what cannot be done are quarantined and passed over in skip mode, and stop the replayer otherwise', async (t) => {
  const pair = await makePair('cannot-apply');
  t.teardown(() => pair.close());
  const op = (s: number, p: string, rest: object) => ({ header: { ...head(s, p), ...rest } as EntryHeader });
  await publish(pair.server.url, [
    op(1, 'd', { op: 'mkdir', mode: 0o755 }),
    op(2, 'l', { op: 'link', fromRoot: 'data', from: 'd' }), // a hard link to a directory
    op(3, 'd', { op: 'rename', toRoot: 'data', to: 'd/inside' }), // EINVAL: into itself
    op(4, 'e', { op: 'mkdir', mode: 0o755 }),
    put(5, 'e/f', 'f'),
    // ENOTEMPTY, which the primary's rename cannot have met: applied as the primary has it, and in doubt.
    op(6, 'd', { op: 'rename', toRoot: 'data', to: 'e' }),
    // A journal name with a separator: refused when decoded, before it names a staging file.
    { header: { ...head(7, 'big'), j: 'x/y', op: 'put', mode: 0o644, c: { first: 7, i: 0, n: 2, off: 0, total: 8 } } as EntryHeader, data: Buffer.from('aaaa') },
    put(7, 'ok.txt', 'ok'),
  ]);
  await t.throwsAsync(pair.drain(), { message: /entry app\.1\.2 \(link data\/l.*refused: link source d is a directory on the standby.*quarantined in .*; stopping/ });
  const logs: string[] = [];
  const s = await pair.drain(undefined, { onBadEntry: 'skip', log: (l) => logs.push(l) });
  t.is(s.skipped, 3, logs.join('\n'));
  t.is(s.applied, 4, 'e, e/f, the rename of d over e and ok.txt; d came with the first, halted, run');
  t.is(s.inDoubt, 3, 'e, which the rename replaced, and what the two refused entries would have changed (l, d)');
  t.regex(logs.join('\n'), /data\/l may differ from the primary: app\.1\.2 \(link\) was refused and passed over/);
  t.regex(logs.join('\n'), /data\/d may differ from the primary: app\.1\.3 \(rename\) was refused and passed over/);
  t.regex(logs.join('\n'), /app\.1\.3 .* failed: EINVAL/);
  t.regex(logs.join('\n'), /data\/e may differ from the primary: app\.1\.6 \(rename data\/d → data\/e\) found ENOTEMPTY at its target/);
  t.regex(logs.join('\n'), /stream message 7 .*"j" is missing or invalid/);
  t.deepEqual(fs.readdirSync(pair.standby).sort(), ['e', 'ok.txt']);
  t.deepEqual(fs.readdirSync(path.join(pair.standby, 'e')), []);
  t.deepEqual(fs.readdirSync(path.join(pair.state, 'staging')), []);
  t.deepEqual(fs.readdirSync(path.join(pair.state, 'quarantine')).filter((f) => f.endsWith('.json')).length, 3);
});

test.serial('in skip mode too, a failure that says something about the standby stops the replayer', async (t) => {
  const pair = await makePair('standby-fault');
  t.teardown(() => pair.close());
  await publish(pair.server.url, [
    { header: { ...head(1, 'gone'), op: 'rename', toRoot: 'data', to: 'moved' } as EntryHeader },
    put(2, 'after.txt', 'after'),
  ]);
  await t.throwsAsync(pair.drain(undefined, { onBadEntry: 'skip' }), { instanceOf: ApplyError, message: /rename source .* does not exist on the standby/ });
  t.deepEqual(fs.readdirSync(pair.standby), []);
  t.false(fs.existsSync(path.join(pair.state, 'quarantine')));
});

test.serial('entries held behind a missing one are capped, in count and in bytes', async (t) => {
  const pair = await makePair('held-cap');
  t.teardown(() => pair.close());
  const big = (s: number) => put(s, `f${s}.bin`, 'x'.repeat(4096));
  await publish(pair.server.url, [put(1, 'a.txt', 'a'), big(3), big(4), big(5), big(6), big(7)]);
  await t.throwsAsync(pair.drain(undefined, { maxHeld: { entries: 100, bytes: 16 * 1024 } }), {
    message: /journal app: entries after 1\.1 are missing from the stream \(holding 4 later ones, 16384 bytes\)/,
  });
  await t.throwsAsync(pair.drain(undefined, { maxHeld: { entries: 3, bytes: 1 << 20 } }), { message: /\(holding 3 later ones, 12288 bytes\)/ });
  t.deepEqual(fs.readdirSync(pair.standby), ['a.txt']);
});

test.serial('an entry held and delivered again is held once, and counted once', async (t) => {
  const pair = await makePair('held-again');
  t.teardown(() => pair.close());
  const three = put(3, 'c.bin', 'x'.repeat(4096));
  // Four resends of entry 3 while entry 2 is missing: 4 KiB held, not 16.
  await publish(pair.server.url, [put(1, 'a.txt', 'a'), ...[1, 2, 3, 4].map((n) => ({ ...three, id: `app.1.3.again.${n}` })), put(2, 'b.txt', 'b')]);
  const s = await pair.drain(undefined, { maxHeld: { entries: 100, bytes: 10 * 1024 } });
  t.is(s.applied, 3);
  t.deepEqual(fs.readdirSync(pair.standby).sort(), ['a.txt', 'b.txt', 'c.bin']);
});

test.serial('a standby directory swapped for a symlink is never written through', async (t) => {
  const pair = await makePair('swap');
  t.teardown(() => pair.close());
  const outside = path.join(pair.dir, 'outside');
  fs.mkdirSync(outside);
  await publish(pair.server.url, [put(1, 'dir/first.txt', 'first')]);
  await pair.drain();
  // An attacker on the standby replaces the directory with a link to elsewhere.
  fs.rmSync(path.join(pair.standby, 'dir'), { recursive: true });
  fs.symlinkSync(outside, path.join(pair.standby, 'dir'));
  await publish(pair.server.url, [put(2, 'dir/second.txt', 'second'), { header: { ...head(3, 'dir'), op: 'chmod', mode: 0o777 } as EntryHeader }]);
  await t.throwsAsync(pair.drain(), { message: /"dir" is a symlink on the standby; refusing to write through it/ });
  await pair.drain(undefined, { onBadEntry: 'skip' });
  t.deepEqual(fs.readdirSync(outside), []);
  t.is(fs.statSync(outside).mode & 0o777, 0o755);
});

test.serial('chunks that never complete are refused, not applied half', async (t) => {
  const pair = await makePair('chunks');
  t.teardown(() => pair.close());
  const c = (i: number) => ({ first: 1, i, n: 3, off: i * 4, total: 12 });
  await publish(pair.server.url, [
    { header: { ...head(1, 'big'), op: 'put', mode: 0o644, c: c(0) } as EntryHeader, data: Buffer.from('aaaa') },
    { header: { ...head(2, 'big'), op: 'put', mode: 0o644, c: c(1) } as EntryHeader, data: Buffer.from('bbbb') },
    put(3, 'other.txt', 'the last chunk never came'),
  ]);
  await t.throwsAsync(pair.drain(), { message: /chunks 2\.\.2 of entry app\.1 never arrived before app\.1\.3/ });
  t.deepEqual(fs.readdirSync(pair.standby), []);
});

/** A small filesystem for the standby: a tmpfs when this machine lets us mount one. */
function smallFs(dir: string, bytes: number): (() => void) | undefined {
  fs.mkdirSync(dir);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'ignore' });
    return () => execFileSync('umount', [dir], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
}

/**
 * The standby root on a disk with 1 MiB free: a tmpfs holding 1 MiB of ballast the operator
 * will delete, or (where no tmpfs can be mounted, and always in the second case) the same
 * simulated in the replayer's write function.
 */
for (const disk of ['tmpfs', 'simulated'] as const) {
  test.serial(`a full standby disk (${disk}) stops applying with a clear error, shows no partial file, and resumes once space is freed`, async (t) => {
    const pair = await makePair(`enospc-${disk}`);
    t.teardown(() => pair.close());
    const mnt = path.join(pair.dir, 'small');
    const unmount = disk === 'tmpfs' ? smallFs(mnt, 2 * 1024 * 1024) : (fs.mkdirSync(mnt), undefined);
    let simulated: SmallDisk | undefined;
    if (unmount === undefined) {
      if (disk === 'tmpfs') t.log('cannot mount a tmpfs here (it needs root); simulating the full disk instead');
      simulated = new SmallDisk(mnt, 1024 * 1024);
    } else {
      t.teardown(unmount);
      fs.writeFileSync(path.join(mnt, 'ballast'), Buffer.alloc(1024 * 1024)); // what the operator will free
    }
    const standby = path.join(mnt, 'root');
    fs.mkdirSync(standby);
    const freeSpace = () => (simulated === undefined ? fs.rmSync(path.join(mnt, 'ballast')) : (simulated.free += 1024 * 1024));
    const run = await pair.runApp({
      code: `const fs = require('fs'); const r = ${JSON.stringify(pair.primary)};
        fs.writeFileSync(r + '/a.bin', Buffer.alloc(600 * 1024, 1)); fs.writeFileSync(r + '/b.bin', Buffer.alloc(600 * 1024, 2));
        fs.writeFileSync(r + '/c.txt', 'after the big ones');`,
    });
    t.is(run.code, 0, run.stderr);
    const replay = (drain: boolean, signal?: AbortSignal, log?: (l: string) => void) => new Replayer({
      nats: { url: pair.server.url, replicas: 1 }, stream: 'UNDERSTUDY', roots: parseRoots(`data=${standby}`), stateDir: pair.state,
      drain, log: log ?? (() => undefined), write: simulated?.write,
    }).run(signal);
    await t.throwsAsync(replay(true), { message: /entry app\.\d+\.2 \(put data\/b\.bin, stream message \d+\) failed: ENOSPC/ });
    t.deepEqual(fs.readdirSync(standby), ['a.bin'], 'b.bin is not visible at all, and no temporary file is left');

    // Following instead of draining: it waits for space, then goes on by itself.
    const ac = new AbortController();
    const logs: string[] = [];
    const following = replay(false, ac.signal, (l) => logs.push(l));
    while (!logs.some((l) => /waiting for space/.test(l))) await new Promise((r) => setTimeout(r, 50));
    freeSpace();
    while (!fs.existsSync(path.join(standby, 'c.txt'))) await new Promise((r) => setTimeout(r, 50));
    ac.abort();
    const s = await following;
    t.is(s.applied, 2);
    t.true(logs.some((l) => /applying resumed/.test(l)));
    t.deepEqual(diffTrees(pair.primary, standby), []);
  });
}

test.serial('a full disk while recording positions (positions.json, committed.json) waits for space like one while applying, and loses nothing', async (t) => {
  const pair = await makePair('enospc-positions');
  t.teardown(() => pair.close());
  await publish(pair.server.url, [put(1, 'a.txt', 'a'), put(2, 'b.txt', 'b')]);
  const committed = new SmallDisk(path.join(pair.state, 'committed.json'), 0);
  const positions = new SmallDisk(path.join(pair.state, 'positions.json'), 0, committed.write);
  const ac = new AbortController();
  const logs: string[] = [];
  const following = new Replayer({
    nats: { url: pair.server.url, replicas: 1 }, stream: 'UNDERSTUDY', roots: parseRoots(`data=${pair.standby}`), stateDir: pair.state,
    drain: false, log: (l) => logs.push(l), write: positions.write,
  }).run(ac.signal);
  let failed: unknown;
  following.catch((err: unknown) => (failed = err));
  const until = async (what: string, done: () => boolean) => {
    for (const deadline = Date.now() + 15_000; !done() && failed === undefined; await new Promise((r) => setTimeout(r, 50))) {
      if (Date.now() > deadline) throw new Error(`waited 15 s for ${what}; it logged:\n${logs.join('\n')}`);
    }
    t.is(failed, undefined, `it waits for space instead of stopping (${what})`);
  };
  const said = (re: RegExp) => () => logs.some((l) => re.test(l));
  try {
    await until('it to wait for space to record a position', said(/ENOSPC.*waiting for space/));
    positions.free = 1024 * 1024;
    await until('b.txt', () => fs.existsSync(path.join(pair.standby, 'b.txt')));
    await until('it to say the commit cannot be made', said(/cannot record the applied positions \(ENOSPC/));
    committed.free = 1024 * 1024;
    await until('the commit', said(/applied positions are recorded again/));
  } finally {
    ac.abort();
  }
  const s = await following;
  t.is(s.applied, 2, 'a.txt (applied again once its position could be recorded) and b.txt');
  t.true(logs.some((l) => /applying resumed/.test(l)));
  for (const file of ['positions.json', 'committed.json']) {
    t.is(JSON.parse(fs.readFileSync(path.join(pair.state, file), 'utf8').split('\n')[0]).journals.app.s, 2, file);
  }
  t.deepEqual(fs.readdirSync(pair.standby).sort(), ['a.txt', 'b.txt']);
});
