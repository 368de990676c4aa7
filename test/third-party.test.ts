import test from 'ava';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makePair, REPO, type Pair } from './helpers/pair';
import { diffTrees } from './helpers/tree';

// Programs nobody here wrote, run under the agent; after --drain the standby must equal the primary.
const FIX = path.join(REPO, 'test', 'fixtures', 'third-party');

async function runAndCompare(t: import('ava').ExecutionContext, pair: Pair, file: string, args: string[], env: Record<string, string> = {}): Promise<void> {
  const run = await pair.runApp({ file, args, env });
  t.is(run.code, 0, run.stderr);
  t.is(run.stderr, '');
  await pair.drain();
  t.true(fs.readdirSync(pair.primary).length > 0, 'the program wrote something');
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
}

test.serial('fs-extra: ensureDir, outputFile, writeJson, concurrent appends, copy, move, remove, emptyDir', async (t) => {
  const pair = await makePair('fs-extra');
  t.teardown(() => pair.close());
  await runAndCompare(t, pair, path.join(FIX, 'fs-extra-app.js'), [pair.primary]);
});

test.serial('write-file-atomic: thirty atomic rewrites of one file in flight at once', async (t) => {
  const pair = await makePair('wfa');
  t.teardown(() => pair.close());
  await runAndCompare(t, pair, path.join(FIX, 'write-file-atomic-app.js'), [pair.primary]);
  // write-file-atomic queues writes to one file in call order: the last one called is the one that stays.
  t.is((JSON.parse(fs.readFileSync(path.join(pair.standby, 'state.json'), 'utf8')) as { version: number }).version, 29);
});

test.serial('node-tar: an archive extracted into the root', async (t) => {
  const pair = await makePair('tar');
  t.teardown(() => pair.close());
  // The archive is made of this repository's lib/ and test/ sources, outside the root, without the agent.
  const archive = path.join(pair.dir, 'src.tgz');
  execFileSync(process.execPath, ['-e', `require('tar').c({ gzip: true, file: ${JSON.stringify(archive)}, cwd: ${JSON.stringify(REPO)}, sync: true }, ['lib', 'test'])`], { cwd: REPO });
  await runAndCompare(t, pair, path.join(FIX, 'tar-app.js'), [archive, pair.primary]);
  t.true(fs.existsSync(path.join(pair.standby, 'lib', 'codec.ts')));
});

test.serial('winston: two File transports writing at once', async (t) => {
  const pair = await makePair('winston');
  t.teardown(() => pair.close());
  await runAndCompare(t, pair, path.join(FIX, 'winston-app.js'), [pair.primary]);
  t.is(fs.readFileSync(path.join(pair.standby, 'app.log'), 'utf8').split('\n').length, 2001);
});

test.serial('pino: an asynchronous destination (sonic-boom)', async (t) => {
  const pair = await makePair('pino');
  t.teardown(() => pair.close());
  await runAndCompare(t, pair, path.join(FIX, 'pino-app.js'), [pair.primary]);
  t.is(fs.readFileSync(path.join(pair.standby, 'pino.log'), 'utf8').split('\n').length, 3001);
});

test.serial('pino.transport: the log file is written by a worker thread', async (t) => {
  const pair = await makePair('pino-transport');
  t.teardown(() => pair.close());
  await runAndCompare(t, pair, path.join(FIX, 'pino-app.js'), [pair.primary, 'transport']);
  t.is(fs.readFileSync(path.join(pair.standby, 'transport.log'), 'utf8').split('\n').length, 3001);
});

test.serial('npm install of a small project with a packed dependency', async (t) => {
  const pair = await makePair('npm');
  t.teardown(() => pair.close());
  // A dependency packed outside the root, so that npm installs it without the network.
  const dep = path.join(pair.dir, 'dep');
  fs.mkdirSync(path.join(dep, 'lib'), { recursive: true });
  fs.writeFileSync(path.join(dep, 'package.json'), JSON.stringify({ name: 'understudy-test-dep', version: '1.2.3', main: 'lib/index.js' }));
  fs.writeFileSync(path.join(dep, 'lib', 'index.js'), 'module.exports = 42;\n');
  const npm = fs.realpathSync(execFileSync('sh', ['-c', 'command -v npm']).toString().trim());
  const cache = path.join(pair.dir, 'npm-cache');
  const npmEnv = { npm_config_cache: cache, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
  const packed = execFileSync(process.execPath, [npm, 'pack', '--silent', '--pack-destination', pair.dir], { cwd: dep, env: { ...process.env, ...npmEnv } }).toString().trim();
  const proj = path.join(pair.primary, 'proj');
  const manifest = JSON.stringify({ name: 'proj', version: '1.0.0', dependencies: { 'understudy-test-dep': `file:${path.join(pair.dir, packed)}` } });
  const run = await pair.runApp({
    code: `const fs = require('fs'); fs.mkdirSync(${JSON.stringify(proj)}); fs.writeFileSync(${JSON.stringify(path.join(proj, 'package.json'))}, ${JSON.stringify(manifest)});
      process.chdir(${JSON.stringify(proj)}); process.argv.splice(1, 1, ${JSON.stringify(npm)}, 'install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'); require(${JSON.stringify(npm)});`,
    env: npmEnv,
  });
  t.is(run.code, 0, run.stderr);
  await pair.drain();
  t.true(fs.existsSync(path.join(pair.standby, 'proj', 'node_modules', 'understudy-test-dep', 'lib', 'index.js')));
  t.true(fs.existsSync(path.join(pair.standby, 'proj', 'package-lock.json')));
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});
