import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startNatsServer } from './helpers/nats-server';
import { makePair, PRELOAD, REPO, type Pair } from './helpers/pair';
import { diffTrees } from './helpers/tree';

/**
 * Every way a process ends, tried out of process on fixture programs under the agent: after a
 * drain the standby must equal the primary, and the process must end exactly as it would
 * without the agent (exit code, signal, stderr).
 */

const SIGNAL_EXIT = JSON.stringify(path.join(REPO, 'node_modules', 'signal-exit'));

/** Fixture source: `R` is the primary root, `put(name)` writes a file there. */
function program(pair: Pair, body: string): string {
  return `const fs = require('fs'); const R = ${JSON.stringify(pair.primary)};
    const put = (n) => fs.writeFileSync(R + '/' + n, 'content of ' + n);
    ${body}`;
}

/** Drains the stream; the primary must hold exactly `files`, and the standby equal it. */
async function assertReplicated(t: ExecutionContext, pair: Pair, files: string[]): Promise<void> {
  await pair.drain();
  t.deepEqual(fs.readdirSync(pair.primary).sort(), [...files].sort(), 'the fixture wrote what it should');
  t.deepEqual(diffTrees(pair.primary, pair.standby), [], 'the standby equals the primary');
}

test.serial('a write in an exit handler registered after the agent is replicated (npm writes its debug log there)', async (t) => {
  const pair = await makePair('exit-after');
  t.teardown(() => pair.close());
  const run = await pair.runApp({ code: program(pair, `put('a'); process.on('exit', () => { put('in-exit'); fs.appendFileSync(R + '/in-exit', ' and more'); });`) });
  t.is(run.code, 0);
  t.is(run.stderr, '');
  await assertReplicated(t, pair, ['a', 'in-exit']);
});

test.serial('an exit handler that writes, then calls process.exit() itself (Node ends there): the write is replicated', async (t) => {
  const pair = await makePair('exit-in-exit');
  t.teardown(() => pair.close());
  const run = await pair.runApp({ code: program(pair, `put('a'); process.on('exit', () => { put('in-exit'); process.exit(9); });`) });
  t.is(run.code, 9);
  t.is(run.stderr, '');
  await assertReplicated(t, pair, ['a', 'in-exit']);
});

test.serial('a write in an exit handler registered before the agent started is replicated', async (t) => {
  const pair = await makePair('exit-before');
  t.teardown(() => pair.close());
  const run = await pair.runApp({
    withAgent: false,
    code: program(pair, `process.on('exit', () => put('in-exit')); require(${JSON.stringify(PRELOAD)}); put('a');`),
  });
  t.is(run.code, 0);
  t.is(run.stderr, '');
  await assertReplicated(t, pair, ['a', 'in-exit']);
});

test.serial("a library's exit callback that runs after every exit listener (signal-exit wraps process.emit) is replicated", async (t) => {
  const pair = await makePair('exit-lib');
  t.teardown(() => pair.close());
  const run = await pair.runApp({ code: program(pair, `require(${SIGNAL_EXIT}).onExit(() => put('on-exit')); put('a'); process.exitCode = 6;`) });
  t.is(run.code, 6);
  t.is(run.stderr, '');
  await assertReplicated(t, pair, ['a', 'on-exit']);
});

test.serial('process.exit() after async work: everything is replicated and the exit code kept', async (t) => {
  const pair = await makePair('exit-async');
  t.teardown(() => pair.close());
  const run = await pair.runApp({
    code: program(pair, `(async () => {
      await fs.promises.writeFile(R + '/a', 'first');
      await new Promise((r) => setTimeout(r, 30));
      fs.writeFile(R + '/b', 'second', () => { process.on('exit', () => put('in-exit')); process.exit(5); });
    })();`),
  });
  t.is(run.code, 5);
  t.is(run.stderr, '');
  await assertReplicated(t, pair, ['a', 'b', 'in-exit']);
});

test.serial('an uncaught exception: same message and exit code as without the agent, and every write replicated', async (t) => {
  const pair = await makePair('uncaught');
  t.teardown(() => pair.close());
  const script = path.join(pair.dir, 'crash.js');
  // The root comes from argv, so the run without the agent writes elsewhere and the stderr is the same text.
  fs.writeFileSync(script, `const fs = require('fs'); const R = process.argv[2];
    fs.writeFileSync(R + '/a', 'before');
    process.on('exit', () => fs.writeFileSync(R + '/in-exit', 'after the throw'));
    setTimeout(() => { fs.writeFileSync(R + '/b', 'just before'); throw new Error('boom'); }, 20);`);
  const scratch = fs.mkdtempSync(path.join(pair.dir, 'scratch-'));
  const bare = await pair.runApp({ file: script, args: [scratch], withAgent: false });
  const run = await pair.runApp({ file: script, args: [pair.primary] });
  t.is(bare.code, 1);
  t.is(run.code, bare.code);
  t.is(run.signal, null);
  t.regex(run.stderr, /Error: boom/);
  t.is(run.stderr, bare.stderr);
  await assertReplicated(t, pair, ['a', 'b', 'in-exit']);
});

test.serial('an unhandled rejection: same message and exit code as without the agent, and every write replicated', async (t) => {
  const pair = await makePair('rejection');
  t.teardown(() => pair.close());
  const script = path.join(pair.dir, 'reject.js');
  fs.writeFileSync(script, `const fs = require('fs'); const R = process.argv[2];
    process.on('exit', () => fs.writeFileSync(R + '/in-exit', 'after the rejection'));
    (async () => { await fs.promises.writeFile(R + '/a', 'before'); throw new Error('rejected'); })();`);
  const scratch = fs.mkdtempSync(path.join(pair.dir, 'scratch-'));
  const bare = await pair.runApp({ file: script, args: [scratch], withAgent: false });
  const run = await pair.runApp({ file: script, args: [pair.primary] });
  t.is(bare.code, 1);
  t.is(run.code, bare.code);
  t.regex(run.stderr, /Error: rejected/);
  t.is(run.stderr, bare.stderr);
  await assertReplicated(t, pair, ['a', 'in-exit']);
});

/** A long-running fixture: writes, prints "ready", then idles until signalled. */
function idleApp(pair: Pair, body: string, env: Record<string, string> = {}) {
  const script = path.join(pair.dir, `idle-${Math.random().toString(36).slice(2)}.js`);
  fs.writeFileSync(script, program(pair, `${body}; setInterval(() => {}, 1000); process.stdout.write('ready\\n');`));
  const child = spawn(process.execPath, ['--require', PRELOAD, script], {
    env: pair.env({ UNDERSTUDY_EXIT_TIMEOUT_MS: '60000', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  /** Resolves once the fixture has printed `text`. */
  const said = (text: string) => new Promise<void>((resolve, reject) => {
    const look = () => {
      if (!stdout.includes(text)) return;
      child.stdout.off('data', look);
      resolve();
    };
    child.stdout.on('data', look);
    child.on('exit', () => reject(new Error(`exited before it said ${JSON.stringify(text)}: ${stderr}`)));
    look();
  });
  const ready = said('ready\n');
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, ready, said, ended };
}

/**
 * NATS is down while the fixture journals and when the signal comes, and only comes back after:
 * what the standby gets, it got from the flush the signal started, never from shipping before.
 * `between` runs after the first signal (it may signal again).
 */
async function signalledWhileDown(t: ExecutionContext, pair: Pair, body: string, sig: NodeJS.Signals, between?: (app: ReturnType<typeof idleApp>) => Promise<void>) {
  await pair.server.stop();
  const app = idleApp(pair, body);
  await app.ready;
  app.child.kill(sig);
  await between?.(app);
  const server = await startNatsServer({ port: pair.server.port, storeDir: pair.server.storeDir });
  t.teardown(() => server.stop());
  return app.ended;
}

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  test.serial(`${sig} with no handler: the journal is flushed, then the process is killed by ${sig}`, async (t) => {
    const pair = await makePair(`sig-${sig}`);
    t.teardown(() => pair.close());
    const end = await signalledWhileDown(t, pair, `put('a'); put('b')`, sig);
    t.is(end.signal, sig, end.stderr);
    t.is(end.code, null);
    await assertReplicated(t, pair, ['a', 'b']);
  });
}

test.serial("an application's own SIGTERM handler decides: not delayed, not overruled, and its writes are replicated", async (t) => {
  const pair = await makePair('sig-own');
  t.teardown(() => pair.close());
  const app = idleApp(pair, `put('a');
    process.on('SIGTERM', () => { put('graceful'); process.stdout.write('handled\\n'); setTimeout(() => process.exit(3), 50); })`);
  await app.ready;
  app.child.kill('SIGTERM');
  const end = await app.ended;
  t.is(end.signal, null, 'our handler did not re-raise over the application');
  t.is(end.code, 3);
  t.regex(end.stdout, /handled/);
  await assertReplicated(t, pair, ['a', 'graceful']);
});

test.serial('a once() handler added after the agent takes the first SIGTERM; the second ends the process, flushed', async (t) => {
  const pair = await makePair('sig-once');
  t.teardown(() => pair.close());
  const end = await signalledWhileDown(t, pair, `put('a');
    process.once('SIGTERM', () => { put('first-term'); process.stdout.write('first\\n'); })`, 'SIGTERM', async (app) => {
    await app.said('first\n');
    app.child.kill('SIGTERM');
  });
  t.is(end.signal, 'SIGTERM', end.stderr);
  t.regex(end.stdout, /first/);
  await assertReplicated(t, pair, ['a', 'first-term']);
});

test.serial("signal-exit's handler still ends the process by the signal, and what its callback wrote is replicated", async (t) => {
  const pair = await makePair('sig-lib');
  t.teardown(() => pair.close());
  const end = await signalledWhileDown(t, pair, `put('a'); require(${SIGNAL_EXIT}).onExit((code, signal) => put('on-' + signal))`, 'SIGTERM');
  t.is(end.signal, 'SIGTERM', end.stderr);
  await assertReplicated(t, pair, ['a', 'on-SIGTERM']);
});
