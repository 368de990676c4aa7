'use strict';
/**
 * Pieces shared by the benches of the commands without an application (baseline.js, verify.js,
 * watch.js): timed child processes (the CLI, rsync, lsyncd), peak RSS through /usr/bin/time,
 * trees of files, a comparison of two trees, and the facts about the disk and the load that go
 * with every figure.
 */
const { spawn, execFileSync, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { CLI, hookSignals } = require('./common');

const TIME = '/usr/bin/time';
const haveTime = fs.existsSync(TIME);

/** Processes started here that are still running, killed on the way out (common.js's exit hook does not know them). */
const running = new Set();
process.once('exit', () => {
  for (const c of running) {
    try {
      c.kill('SIGKILL');
    } catch {
      // gone
    }
  }
});

/**
 * Runs `cmd args` to its exit and times it (performance.now() from spawn to exit).
 * With `rss`, runs it under /usr/bin/time and also returns the peak RSS (KiB) and CPU seconds.
 * Rejects on a non-zero exit unless `allowFail`.
 */
function timed(cmd, args, { env = {}, rss = false, timeoutMs = 170_000, allowFail = false } = {}) {
  hookSignals();
  const statFile = rss && haveTime ? path.join(os.tmpdir(), `understudy-bench-time-${process.pid}-${crypto.randomBytes(4).toString('hex')}`) : undefined;
  const argv = statFile ? ['-f', '%M %U %S', '-o', statFile, cmd, ...args] : args;
  const bin = statFile ? TIME : cmd;
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(bin, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const ms = performance.now() - t0;
      clearTimeout(timer);
      running.delete(child);
      let rssKiB;
      let cpuS;
      if (statFile) {
        try {
          const [m, u, s] = fs.readFileSync(statFile, 'utf8').trim().split('\n').pop().split(/\s+/).map(Number);
          rssKiB = m;
          cpuS = u + s;
        } catch {
          // time wrote nothing (killed)
        }
        fs.rmSync(statFile, { force: true });
      }
      if (code !== 0 && !allowFail) {
        reject(new Error(`${cmd} ${args.join(' ')} exited with ${code ?? signal} after ${ms.toFixed(0)} ms\n${stderr}${stdout}`));
        return;
      }
      resolve({ ms, code, stdout, stderr, rssKiB, cpuS });
    });
  });
}

/** `node dist/cli.js …`, timed. */
function cli(args, opts) {
  return timed(process.execPath, [CLI, ...args], opts);
}

/**
 * A long-running child (a following replayer, `understudy watch`, lsyncd). `ready` resolves when
 * `readyRe` matches its stderr (or at once without one); `stop()` sends SIGTERM and waits.
 */
function daemon(cmd, args, { env = {}, readyRe, readyTimeoutMs = 30_000 } = {}) {
  hookSignals();
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let out = '';
  const exited = new Promise((resolve) => child.on('close', (code, signal) => {
    running.delete(child);
    resolve({ code, signal });
  }));
  const ready = new Promise((resolve, reject) => {
    if (readyRe === undefined) {
      resolve();
      return;
    }
    const timer = setTimeout(() => reject(new Error(`${path.basename(cmd)} ${args.join(' ')}: not ready after ${readyTimeoutMs} ms\n${out}`)), readyTimeoutMs);
    const look = () => {
      if (readyRe.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', (d) => { out += d; look(); });
    child.stderr.on('data', (d) => { out += d; look(); });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${path.basename(cmd)} exited (${code ?? signal}) before it was ready\n${out}`));
    });
  });
  ready.catch(() => undefined);
  if (readyRe === undefined) {
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
  }
  return {
    child,
    ready,
    output: () => out,
    async stop(timeoutMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
}

/**
 * Writes `files` files of minKiB..maxKiB random bytes, spread over `dirs` directories, under `dir`.
 * Returns their count and total bytes.
 */
function makeSmallTree(dir, { files = 10_000, dirs = 100, minBytes = 1024, maxBytes = 4096 } = {}) {
  let bytes = 0;
  const pool = crypto.randomBytes(1 << 20);
  for (let d = 0; d < dirs; d++) fs.mkdirSync(path.join(dir, `d${String(d).padStart(3, '0')}`), { recursive: true });
  for (let i = 0; i < files; i++) {
    const size = minBytes + crypto.randomInt(maxBytes - minBytes + 1);
    const off = crypto.randomInt(pool.length - size);
    const data = Buffer.from(pool.subarray(off, off + size));
    data.writeUInt32LE(i, 0); // no two files alike
    fs.writeFileSync(path.join(dir, `d${String(i % dirs).padStart(3, '0')}`, `f${String(i).padStart(5, '0')}.bin`), data);
    bytes += size;
  }
  return { files, dirs, bytes };
}

/** One file of `bytes` random bytes (written 1 MiB at a time). */
function makeBigFile(file, bytes) {
  const fd = fs.openSync(file, 'w');
  try {
    for (let off = 0; off < bytes; off += 1 << 20) fs.writeSync(fd, crypto.randomBytes(Math.min(1 << 20, bytes - off)));
  } finally {
    fs.closeSync(fd);
  }
  return { files: 1, dirs: 0, bytes };
}

/** Throws unless the two trees hold the same names, types, permission bits and bytes. */
function assertSameTree(a, b) {
  const r = spawnSync('diff', ['-rq', '--no-dereference', a, b], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${b} differs from ${a}:\n${(r.stdout + r.stderr).slice(0, 2000)}`);
  const modes = (d) => execFileSync('find', [d, '-mindepth', '1', '-printf', '%P %y %m\n'], { encoding: 'utf8', maxBuffer: 64 << 20 }).split('\n').sort().join('\n');
  if (modes(a) !== modes(b)) throw new Error(`${b}: types or permission bits differ from ${a}`);
}

function syncDisk() {
  spawnSync('sync');
}

/** The disk under `dir`: df -h and the filesystem type (tmpfs or not). */
function diskOf(dir) {
  const df = execFileSync('df', ['-h', dir], { encoding: 'utf8' }).trim().split('\n').pop().split(/\s+/);
  const fstype = execFileSync('findmnt', ['-n', '-o', 'FSTYPE,OPTIONS', '-T', dir], { encoding: 'utf8' }).trim();
  return `${dir}: ${df[0]} ${df[1]} (${df[4]} used), ${fstype.split(/\s+/)[0]} (${fstype.split(/\s+/)[1]})`;
}

/** Load average and the busiest processes over the last half second (top), to say what ran beside the bench. */
function loadNow() {
  const [l1, l5] = os.loadavg();
  let top = '';
  try {
    // The second of two top iterations 0.5 s apart: %CPU over that half second, not since each process started.
    const out = execFileSync('top', ['-b', '-n', '2', '-d', '0.5', '-w', '200'], { encoding: 'utf8' });
    const last = out.slice(out.lastIndexOf('PID'));
    top = last.split('\n').slice(1, 5).map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 12)
      .map((f) => `${f.slice(11).join(' ')} ${f[8]}%`).join(', ');
  } catch {
    // no top
  }
  return `load ${l1.toFixed(2)} / ${l5.toFixed(2)} (1 / 5 min); busiest over 0.5 s: ${top}`;
}

function version(cmd, args = ['--version']) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0].trim();
  } catch (err) {
    return String(err.stdout ?? err.stderr ?? '').split('\n')[0].trim() || `${cmd}: not available`;
  }
}

function min(v) {
  return v.length === 0 ? NaN : Math.min(...v);
}

function max(v) {
  return v.length === 0 ? NaN : Math.max(...v);
}

module.exports = { timed, cli, daemon, makeSmallTree, makeBigFile, assertSameTree, syncDisk, diskOf, loadNow, version, min, max, haveTime };
