import test from 'ava';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLI, makePair, REPO, type Pair } from './helpers/pair';
import { diffTrees } from './helpers/tree';

const WORKLOAD = path.join(REPO, 'test', 'fixtures', 'shell-workload.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts `understudy watch` on the pair's primary and resolves once its first scan is done. */
async function startWatch(pair: Pair, extraEnv: Record<string, string> = {}): Promise<{ child: ChildProcessWithoutNullStreams; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, 'watch', '--root', `data=${pair.primary}`, '--nats', pair.server.url], {
    env: { ...process.env, UNDERSTUDY_SPOOL_DIR: pair.spool, ...extraEnv }, stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.resume();
  for (let i = 0; !stderr.includes('watching'); i++) {
    if (i > 400 || child.exitCode !== null) throw new Error(`watch did not start: ${stderr}`);
    await sleep(25);
  }
  return { child, stderr: () => stderr };
}

/** Drains until the standby equals the primary or `ms` passed; returns what still differs. */
async function settle(pair: Pair, ms: number): Promise<string[]> {
  const end = Date.now() + ms;
  let diff: string[] = [];
  while (Date.now() < end) {
    await sleep(300);
    await pair.drain();
    diff = diffTrees(pair.primary, pair.standby);
    if (diff.length === 0) return diff;
  }
  return diff;
}

function busyCores(): () => void {
  const spinners = Array.from({ length: os.availableParallelism() }, () =>
    spawn(process.execPath, ['-e', 'const end = Date.now() + 60000; while (Date.now() < end);'], { stdio: 'ignore' }));
  return () => spinners.forEach((s) => s.kill('SIGKILL'));
}

const SEEDS = [1, 2, 3, 5, 8, 13, 21, 34];
for (const seed of SEEDS) {
  test.serial(`a seeded shell workload under a watched root (seed ${seed}${seed % 4 === 1 ? ', both cores busy' : ''}) ends on the standby`, async (t) => {
    const pair = await makePair('watch-fidelity');
    t.teardown(() => pair.close());
    const w = await startWatch(pair);
    t.teardown(() => w.child.kill('SIGKILL'));
    const stop = seed % 4 === 1 ? busyCores() : () => undefined;
    t.teardown(stop);
    const script = spawnSync(process.execPath, [WORKLOAD, String(seed), '60']).stdout.toString();
    const sh = spawnSync('sh', ['-c', script], { cwd: pair.primary, encoding: 'utf8' });
    t.is(sh.status, 0, sh.stderr);
    stop();
    t.deepEqual(await settle(pair, 15_000), [], w.stderr());
  });
}
