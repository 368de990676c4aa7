'use strict';
// What the demos share: a headline, a pause, and a child process whose output they keep.
const { spawn } = require('node:child_process');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..');

/** Prints one headline of a demo. */
const say = (line) => console.log(`\x1b[1m==>\x1b[0m ${line}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts `node args` in the repository, keeping what it prints in `child.lines` and echoing it
 * prefixed with `label` (only its stderr when `echo` is 'stderr'); `child.exited` resolves to
 * its exit code or signal.
 */
function start(label, args, env, echo = 'all') {
  const child = spawn(process.execPath, args, { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.lines = '';
  const show = (d) => console.log(d.toString().split('\n').filter(Boolean).map((l) => `   [${label}] ${l}`).join('\n'));
  child.stdout.on('data', (d) => {
    child.lines += d;
    if (echo === 'all') show(d);
  });
  child.stderr.on('data', (d) => {
    child.lines += d;
    show(d);
  });
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  return child;
}

module.exports = { REPO, say, sleep, start };
