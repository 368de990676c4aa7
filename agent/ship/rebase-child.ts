/**
 * How the rebase service runs `understudy baseline` and `understudy verify`: as child processes
 * (never in the application's process, whose thread and memory they would share), without the
 * agent or any other preload of the application, with the agent's NATS settings, bounded in time.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import type { NatsSettings } from '../../lib/settings';
import { DEFAULTS } from '../../lib/settings';

/** How a child ended. */
export interface ChildOutcome {
  /** Its exit code; null when a signal ended it, or it never started. */
  code: number | null;
  /** Why it did not run or was stopped: it could not be spawned, it ran out of time, it was told to stop. */
  failure?: string;
  /** The end of what it printed on stderr. */
  stderr: string;
}

/** Runs `understudy <args>`; resolves how it ended, never rejects. */
export type ChildRunner = (args: string[], o: { timeoutMs: number; signal: AbortSignal }) => Promise<ChildOutcome>;

/** The child's entry (dist/agent/ship/rebase-child-main.js): the cli, ended with its parent. */
const CHILD_MAIN = path.join(__dirname, 'rebase-child-main.js');

/** Flags of NODE_OPTIONS that load code before the main script, each with its value. */
const PRELOADS = new Set(['--require', '-r', '--import', '--loader', '--experimental-loader']);

/**
 * NODE_OPTIONS without the flags that preload code: the agent's own (`--require
 * understudy/agent`, `--import understudy/agent`) would journal the child's reads into the
 * application's journal name, and the application's other preloads are none of the cli's business.
 */
export function withoutPreloads(nodeOptions: string | undefined): string | undefined {
  if (nodeOptions === undefined) return undefined;
  const words = splitOptions(nodeOptions);
  const kept: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    const flag = w.split('=')[0];
    if (PRELOADS.has(flag)) {
      if (!w.includes('=')) i++; // its value is the next word
      continue;
    }
    kept.push(w);
  }
  return kept.map((w) => (/[\s"\\]/.test(w) ? JSON.stringify(w) : w)).join(' ');
}

/** NODE_OPTIONS's words: split on spaces, double quotes group, a backslash escapes within them (as Node reads it). */
function splitOptions(s: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quoted) {
      if (c === '\\' && i + 1 < s.length) word += s[++i];
      else if (c === '"') quoted = false;
      else word += c;
    } else if (c === '"') {
      quoted = true;
      inWord = true;
    } else if (c === ' ' || c === '\t' || c === '\n') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/**
 * The child's environment: the agent's, without preloads and its journal's name (the child
 * names its own), with the NATS settings and stream the agent itself uses, and
 * UNDERSTUDY_DISABLE=1 so that a preload that slipped through loads nothing.
 */
export function childEnv(env: NodeJS.ProcessEnv, nats: NatsSettings, stream: string): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env, UNDERSTUDY_DISABLE: '1', UNDERSTUDY_STREAM: stream, UNDERSTUDY_NATS_URL: nats.url, UNDERSTUDY_STREAM_REPLICAS: String(nats.replicas) };
  const options = withoutPreloads(env.NODE_OPTIONS);
  if (options === undefined || options === '') delete out.NODE_OPTIONS;
  else out.NODE_OPTIONS = options;
  delete out.UNDERSTUDY_NAME;
  delete out.UNDERSTUDY_WATCH;
  const auth: [keyof NatsSettings, string][] = [
    ['creds', 'UNDERSTUDY_NATS_CREDS'], ['nkey', 'UNDERSTUDY_NATS_NKEY'], ['ca', 'UNDERSTUDY_NATS_CA'],
    ['token', 'UNDERSTUDY_NATS_TOKEN'], ['user', 'UNDERSTUDY_NATS_USER'], ['pass', 'UNDERSTUDY_NATS_PASS'],
  ];
  for (const [key, variable] of auth) {
    const v = nats[key];
    if (v === undefined) delete out[variable];
    else out[variable] = String(v);
  }
  return out;
}

/** A ChildRunner that spawns `node rebase-child-main.js <our pid> <args>` with `env`. */
export function spawnRunner(env: NodeJS.ProcessEnv): ChildRunner {
  return (args, o) => new Promise<ChildOutcome>((resolve) => {
    let stderr = '';
    let failure: string | undefined;
    let settled = false;
    const done = (code: number | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(kill);
      o.signal.removeEventListener('abort', onAbort);
      resolve({ code, stderr, ...(failure !== undefined ? { failure } : {}) });
    };
    let kill: NodeJS.Timeout | undefined;
    const stop = (why: string): void => {
      failure ??= why;
      child?.kill('SIGTERM');
      kill = setTimeout(() => child?.kill('SIGKILL'), DEFAULTS.rebase.killGraceMs);
    };
    const onAbort = (): void => stop(String(o.signal.reason ?? 'told to stop'));
    const timer = setTimeout(() => stop(`did not end within ${Math.round(o.timeoutMs / 1000)} s`), o.timeoutMs);
    let child: ReturnType<typeof spawn> | undefined;
    try {
      // No execArgv: the application's node flags (a loader, an inspector port) are not the cli's.
      child = spawn(process.execPath, [CHILD_MAIN, String(process.pid), ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      failure = `cannot start a child process: ${(err as Error).message}`;
      done(null);
      return;
    }
    o.signal.addEventListener('abort', onAbort);
    if (o.signal.aborted) onAbort();
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-DEFAULTS.rebase.stderrTailBytes);
    });
    child.on('error', (err) => {
      failure ??= `cannot start a child process: ${err.message}`;
      done(null);
    });
    child.on('close', (code) => done(code));
  });
}
