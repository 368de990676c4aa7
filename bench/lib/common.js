'use strict';
/**
 * Shared pieces of the benches: paths into dist/, a nats-server of their own,
 * temporary directories that are always removed, child processes, statistics.
 * Everything listens on 127.0.0.1 only.
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..');
const DIST = path.join(REPO, 'dist');
const PRELOAD = path.join(DIST, 'agent', 'preload.js');
const CLI = path.join(DIST, 'cli.js');

function requireDist(rel) {
  const file = path.join(DIST, rel);
  if (!fs.existsSync(file)) {
    throw new Error(`${file} is missing: build first (npx tsc -p tsconfig.json, or npm run bench)`);
  }
  return require(file);
}

/** Temporary directories made by this process; removed at the end, on error and on SIGINT/SIGTERM. */
const tempDirs = new Set();
/** Things to stop on the way out (nats-server, children). */
const stoppers = new Set();
/** Processes we started; killed synchronously if this process dies before stopping them. */
const childPids = new Set();

function tempDir(label, base = os.tmpdir()) {
  const dir = fs.mkdtempSync(path.join(base, `understudy-bench-${label}-`));
  tempDirs.add(dir);
  return dir;
}

function removeDir(dir) {
  fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

async function cleanup() {
  for (const stop of [...stoppers]) {
    stoppers.delete(stop);
    try {
      await stop();
    } catch {
      // best effort on the way out
    }
  }
  for (const dir of [...tempDirs]) removeDir(dir);
}

let signalsHooked = false;
function hookSignals() {
  if (signalsHooked) return;
  signalsHooked = true;
  const onSignal = (sig) => {
    process.stderr.write(`\nbench: ${sig}, cleaning up\n`);
    cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', () => {
    // Synchronous last resort (an uncaught error, say): kill what is left, remove directories.
    for (const pid of childPids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  });
}

/** A nats-server with JetStream on a free loopback port, its store in a temp dir that cleanup() removes. */
async function startNats(label = 'nats') {
  hookSignals();
  const { startNatsServer } = requireDist('test/helpers/nats-server.js');
  const storeDir = tempDir(label);
  const server = await startNatsServer({ storeDir });
  childPids.add(server.process.pid);
  // nats-server logs a client it cut off for not reading fast enough; the e2e bench reports it.
  const slow = [];
  server.process.stderr?.on('data', (d) => {
    for (const line of String(d).split('\n')) if (/Slow Consumer/i.test(line)) slow.push(line.replace(/^\[\d+\] \S+ \S+ \[\w+\] /, ''));
  });
  const stop = async () => {
    await server.stop();
    childPids.delete(server.process.pid);
    removeDir(storeDir);
  };
  stoppers.add(stop);
  return {
    url: server.url,
    pid: server.process.pid,
    storeDir,
    /** nats-server's "Slow Consumer Detected" lines so far (count and the last), or undefined. */
    slowConsumers() {
      return slow.length === 0 ? undefined : `${slow.length} slow-consumer disconnect(s), last: ${slow[slow.length - 1]}`;
    },
    async stop() {
      stoppers.delete(stop);
      await stop();
    },
  };
}

/**
 * Runs `node [--require preload] script args` and resolves with its exit and output.
 * The script reports through its last stdout line, a JSON object.
 */
function runNode(script, args, { env = {}, agent = false, execArgv = [], timeoutMs = 120_000 } = {}) {
  const argv = [...execArgv, ...(agent ? ['--require', PRELOAD] : []), script, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const kill = async () => child.kill('SIGKILL');
    stoppers.add(kill);
    childPids.add(child.pid);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${path.basename(script)} ${args.join(' ')}: no exit after ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      stoppers.delete(kill);
      childPids.delete(child.pid);
      if (code !== 0) {
        reject(new Error(`${path.basename(script)} ${args.join(' ')} exited with ${code ?? signal}\n${stderr}${stdout}`));
        return;
      }
      resolve({ result: lastJson(stdout, script), stderr });
    });
  });
}

/** Spawns a long-lived node child with an IPC channel; the caller drives it with messages. `stdout`: 'inherit' or a file descriptor. */
function spawnIpc(script, args, { env = {}, agent = false, execArgv = [], stdout = 'inherit' } = {}) {
  const argv = [...execArgv, ...(agent ? ['--require', PRELOAD] : []), script, ...args];
  const child = spawn(process.execPath, argv, { env: { ...process.env, ...env }, stdio: ['ignore', stdout, 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const kill = async () => child.kill('SIGKILL');
  stoppers.add(kill);
  childPids.add(child.pid);
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => {
    stoppers.delete(kill);
    childPids.delete(child.pid);
    resolve({ code, signal });
  }));
  /** Resolves with the first message whose type is `type`; rejects if the child exits first. */
  const next = (type, timeoutMs = 120_000) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`${path.basename(script)}: no "${type}" message after ${timeoutMs} ms\n${stderr}`)), timeoutMs);
    const onMsg = (m) => { if (m && m.type === type) done(undefined, m); };
    const onExit = (code, signal) => done(new Error(`${path.basename(script)} exited (${code ?? signal}) before "${type}"\n${stderr}`));
    function done(err, m) {
      clearTimeout(timer);
      child.off('message', onMsg);
      child.off('exit', onExit);
      if (err) reject(err); else resolve(m);
    }
    child.on('message', onMsg);
    child.on('exit', onExit);
  });
  return { child, next, exited, stderr: () => stderr };
}

function lastJson(stdout, what) {
  const lines = stdout.trim().split('\n').filter(Boolean);
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      return JSON.parse(lines[i]);
    } catch {
      // not the report line
    }
  }
  throw new Error(`${what} printed no JSON report:\n${stdout}`);
}

/** Quantile of numbers (nearest rank, q in [0,1]). */
function quantile(values, q) {
  if (values.length === 0) return NaN;
  const s = Float64Array.from(values).sort();
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1));
  return s[i];
}

/**
 * Sequential JetStream publish-ack round trips of `bytes`-byte messages on a stream of its own
 * (after 100 untimed ones): the floor sync mode builds on. Quantiles in µs.
 */
async function publishRoundTrip(url, { n = 1000, bytes = 4096 } = {}) {
  const { connect } = require(require.resolve('@nats-io/transport-node', { paths: [REPO] }));
  const { jetstream, jetstreamManager } = require(require.resolve('@nats-io/jetstream', { paths: [REPO] }));
  const nc = await connect({ servers: url, noAsyncTraces: true });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'RTT', subjects: ['rtt.>'], storage: 'file' });
    const js = jetstream(nc);
    const body = Buffer.alloc(bytes, 1);
    for (let i = 0; i < 100; i++) await js.publish('rtt.x', body);
    const us = [];
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      await js.publish('rtt.x', body);
      us.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    await jsm.streams.delete('RTT');
    return { p50: quantile(us, 0.5), p99: quantile(us, 0.99) };
  } finally {
    await nc.close();
  }
}

/** Least-squares slope of y against x; NaN when fewer than two points or x never moves. */
function slope(xs, ys) {
  const n = xs.length;
  if (n < 2) return NaN;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

function median(values) {
  if (values.length === 0) return NaN;
  const s = Float64Array.from(values).sort();
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function fmt(n, digits = 0) {
  if (!Number.isFinite(n)) return String(n);
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A plain-text table: rows of cells, the first row a header. */
function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  // Figures right-aligned, words left-aligned.
  const numeric = (i) => rows.slice(1).every((r) => /^[-+~]?[\d,.]/.test(String(r[i])) || String(r[i]) === '-');
  const line = (r) => r.map((c, i) => (numeric(i) ? String(c).padStart(widths[i]) : String(c).padEnd(widths[i]))).join('  ');
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Facts about the machine that go with every figure. */
function machine() {
  const cpus = os.cpus();
  return `${cpus.length} x ${cpus[0]?.model ?? 'cpu'}, node ${process.version}, ${os.platform()} ${os.release()}`;
}

/** Runs a bench's `run` as a program: cleans up after it, and exits non-zero on its failure. */
function runMain(run) {
  run().then(() => cleanup(), async (err) => {
    console.error(err);
    await cleanup();
    process.exitCode = 1;
  });
}

module.exports = {
  runMain, REPO, DIST, PRELOAD, CLI, requireDist, tempDir, removeDir, cleanup, hookSignals, startNats, runNode, spawnIpc,
  quantile, median, slope, fmt, table, sleep, machine, publishRoundTrip,
};
