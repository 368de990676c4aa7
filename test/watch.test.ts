import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import type { EntryHeader } from '../lib/entry';
import { CLI, makePair, runCli } from './helpers/pair';
import { publish } from './helpers/publish';
import { diffTrees } from './helpers/tree';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.serial('watch replicates what a shell script changes: cp, mv, rm -r, echo >>, ln -s', async (t) => {
  const pair = await makePair('watch');
  t.teardown(() => pair.close());
  const p = pair.primary;
  fs.mkdirSync(path.join(p, 'old/deep'), { recursive: true });
  fs.writeFileSync(path.join(p, 'old/deep/a'), 'a');
  fs.writeFileSync(path.join(p, 'log'), 'first\n');
  const base = await runCli(['baseline', '--root', `data=${p}`, '--nats', pair.server.url], { UNDERSTUDY_SPOOL_DIR: pair.spool });
  t.is(base.code, 0, base.stderr);

  const watcher = spawn(process.execPath, [CLI, 'watch', '--root', `data=${p}`, '--nats', pair.server.url, '--verbose'], {
    env: { ...process.env, UNDERSTUDY_SPOOL_DIR: pair.spool }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  watcher.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  watcher.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  for (let i = 0; !stderr.includes('watching'); i++) {
    if (i > 200) throw new Error(`watch did not start: ${stderr}`);
    await sleep(50);
  }
  const script = `set -e
    cd ${JSON.stringify(p)}
    mkdir -p src/sub && echo one > src/sub/x && echo two > src/y
    cp -r src copy
    mv src moved
    rm -r old
    echo second >> log
    ln -s moved/y link-to-y
    ln -s /nowhere dangling
    chmod 600 copy/y
    printf 'big' > big && head -c 2000000 /dev/zero >> big`;
  const sh = spawnSync('sh', ['-c', script], { encoding: 'utf8' });
  t.is(sh.status, 0, sh.stderr);
  // Settle: the watcher journals a file once it held still for its threshold.
  for (let i = 0; i < 100; i++) {
    await sleep(100);
    const s = await pair.drain();
    if (s.applied === 0 && diffTrees(pair.primary, pair.standby).length === 0) break;
  }
  watcher.kill('SIGTERM');
  const code = await new Promise<number | null>((r) => watcher.on('close', r));
  t.is(code, 0, stderr);
  t.regex(stderr, /stopped; \d+ change\(s\) journaled, all in the stream/);
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.regex(stdout, /symlink data\/link-to-y/);
});

test.serial('UNDERSTUDY_WATCH=1: what a child process of the application changes is journaled; what the agent journaled is not again', async (t) => {
  const pair = await makePair('watch-agent');
  t.teardown(() => pair.close());
  const app = await pair.runApp({
    env: { UNDERSTUDY_WATCH: '1' },
    code: `const fs = require('fs'); const { execFileSync } = require('child_process');
      const r = ${JSON.stringify(pair.primary)};
      fs.writeFileSync(r + '/own.txt', 'written by the application');
      fs.mkdirSync(r + '/own-dir');
      execFileSync('sh', ['-c', 'cd ' + r + ' && echo child > by-child.txt && mkdir -p kid/dir && echo k > kid/dir/k && ln -s by-child.txt kid-link']);
      // Give the watcher time to see the child's work settle before exiting.
      setTimeout(() => {}, 1500);`,
  });
  t.is(app.code, 0, app.stderr);
  t.is(app.stderr, '');
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  const inspect = await runCli(['inspect', '--json', '--nats', pair.server.url]);
  const entries = inspect.stdout.trim().split('\n').map((l) => JSON.parse(l) as { p: string; op: string });
  t.is(entries.filter((e) => e.p === 'own.txt').length, 1, 'journaled by the wrapper only');
  t.is(entries.filter((e) => e.p === 'own-dir').length, 1);
  t.true(entries.some((e) => e.p === 'kid/dir/k' && e.op === 'put'));
});

test.serial('a replaced directory as the watcher journals it, its removal and the new one read in one millisecond, lands whole on the standby', async (t) => {
  const pair = await makePair('watch-replaced');
  t.teardown(() => pair.close());
  const at = Date.now();
  const head = (s: number, p: string, o: Record<string, unknown>) => ({ header: { j: 'watch', e: 1, s, t: at, b: at, o: s, r: 'data', p, ...o } as EntryHeader });
  await publish(pair.server.url, [
    head(1, 'd', { op: 'mkdir', mode: 0o755 }),
    { ...head(2, 'd/old', { op: 'put', mode: 0o644 }), data: Buffer.from('old') },
    head(3, 'd', { op: 'rm' }),
    head(4, 'd', { op: 'mkdir', mode: 0o755 }),
    { ...head(5, 'd/new', { op: 'put', mode: 0o644 }), data: Buffer.from('new') },
    head(6, 'd/link', { op: 'symlink', target: 'new' }),
  ]);
  const s = await pair.drain();
  t.is(s.stale, 0, 'nothing of the new directory is taken for older than the removal');
  t.deepEqual(fs.readdirSync(path.join(pair.standby, 'd')).sort(), ['link', 'new']);
  t.is(fs.readFileSync(path.join(pair.standby, 'd/new'), 'utf8'), 'new');
});
