'use strict';
/**
 * A primary with a tree of small files, a standby that starts as its copy (`cp -a`), a following
 * `understudy replay`, and `understudy watch` on the primary: what watch-cpu.js and watch-mend.js
 * measure. Also the CPU time of a process from /proc and the watcher's report from `understudy status`.
 */
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { startNats, tempDir, removeDir, CLI } = require('./common');
const { daemon, cli, makeSmallTree } = require('./commands');

const TICK_S = 1 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** utime + stime of `pid` (all its threads), in seconds. */
function cpuSeconds(pid) {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_S; // fields 14 and 15 of proc(5)
}

/**
 * Starts the pair; `files` small files (1-4 KiB) in 100 directories. `env` goes to the watcher
 * (UNDERSTUDY_WATCH_*), `verbose` makes it print each change it journals, `nodeArgs` go before its script.
 */
async function startPair({ files = 10_000, env = {}, verbose = false, nodeArgs = [] } = {}) {
  const nats = await startNats('wpair-nats');
  const src = tempDir('wpair-primary');
  const dst = tempDir('wpair-standby');
  const state = tempDir('wpair-state');
  const spool = tempDir('wpair-spool');
  const tree = makeSmallTree(src, { files, dirs: 100 });
  fs.rmdirSync(dst);
  execFileSync('cp', ['-a', src, dst]);
  const replayer = daemon(process.execPath, [CLI, 'replay', '--root', `data=${dst}`, '--nats', nats.url, '--state', state]);
  const t0 = performance.now();
  const watcher = daemon(process.execPath, [...nodeArgs, CLI, 'watch', '--root', `data=${src}`, '--nats', nats.url, ...(verbose ? ['--verbose'] : [])], {
    env: { UNDERSTUDY_SPOOL_DIR: spool, ...env }, readyRe: /watching /, readyTimeoutMs: 120_000,
  });
  await watcher.ready;
  const startS = (performance.now() - t0) / 1000;
  return {
    nats, src, dst, tree, replayer, watcher, startS,
    /** The watcher's entry in `understudy status --json` (reported every 5 s). */
    async watchStatus() {
      // `status` has been seen to hang in its listing of the state bucket's keys while reports keep arriving: give up on it then.
      try {
        const r = await cli(['status', '--json', '--nats', nats.url], { timeoutMs: 20_000 });
        return JSON.parse(r.stdout).watchers.find((w) => w.name === 'watch');
      } catch (err) {
        console.log(`  (understudy status --json failed: ${String(err.message).split('\n')[0]})`);
        return undefined;
      }
    },
    /** `understudy status`'s line about the watcher, as a person reads it. */
    async watchLine() {
      try {
        const r = await cli(['status', '--nats', nats.url], { timeoutMs: 20_000 });
        return r.stdout.split('\n').find((l) => l.startsWith('watch "')) ?? '(no watch line)';
      } catch (err) {
        return `(understudy status failed: ${String(err.message).split('\n')[0]})`;
      }
    },
    async stop() {
      const w = await watcher.stop();
      await replayer.stop();
      await nats.stop();
      for (const d of [src, dst, state, spool]) removeDir(d);
      return w;
    },
  };
}

/** Waits until `file` holds `content` (polled every `everyMs`); resolves with performance.now() then. */
async function waitFor(file, content, { timeoutMs = 120_000, everyMs = 5 } = {}) {
  const t0 = performance.now();
  for (;;) {
    try {
      if (fs.readFileSync(file, 'utf8') === content) return performance.now();
    } catch {
      // not there yet
    }
    if (performance.now() - t0 > timeoutMs) throw new Error(`${file} not there after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Names in the 100 directories of a tree whose name starts with `prefix`. */
function countNamed(dir, prefix) {
  let n = 0;
  for (const d of fs.readdirSync(dir)) {
    try {
      for (const name of fs.readdirSync(path.join(dir, d))) if (name.startsWith(prefix)) n++;
    } catch {
      // not a directory
    }
  }
  return n;
}

module.exports = { startPair, cpuSeconds, waitFor, countNamed };
