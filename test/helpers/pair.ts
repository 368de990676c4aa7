import { spawn, type ChildProcessByStdio, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Readable } from 'node:stream';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startNatsServer, type NatsServer } from './nats-server';
import { Replayer, type ReplayOptions, type ReplaySummary } from '../../replayer/replayer';
import { parseRoots } from '../../lib/roots';

/** Repository root (tests run from dist/test). */
export const REPO = path.resolve(__dirname, '..', '..', '..');
export const PRELOAD = path.join(REPO, 'dist', 'agent', 'preload.js');
export const CLI = path.join(REPO, 'dist', 'cli.js');

/** A primary directory, a standby directory, a spool, a state dir and a nats-server of their own. */
export interface Pair {
  server: NatsServer;
  dir: string;
  primary: string;
  standby: string;
  spool: string;
  state: string;
  /** Environment for a process under the agent. */
  env(extra?: Record<string, string>): NodeJS.ProcessEnv;
  /** Runs `node --require understudy/agent <script>` (a file, or source text with `code`). */
  runApp(script: { file?: string; code?: string; args?: string[]; env?: Record<string, string>; withAgent?: boolean }): Promise<RunResult>;
  /** Applies everything the stream holds to the standby. */
  drain(name?: string, extra?: Partial<ReplayOptions>): Promise<ReplaySummary>;
  close(): Promise<void>;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Sets up a Pair; call close() in t.teardown. */
export async function makePair(label = 'pair'): Promise<Pair> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `understudy-${label}-`));
  const [primary, standby, spool, state] = ['primary', 'standby', 'spool', 'state'].map((d) => {
    fs.mkdirSync(path.join(dir, d));
    return path.join(dir, d);
  });
  const server = await startNatsServer({ storeDir: path.join(dir, 'nats') });
  const env = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
    ...process.env,
    UNDERSTUDY_NATS_URL: server.url,
    UNDERSTUDY_ROOTS: `data=${primary}`,
    UNDERSTUDY_SPOOL_DIR: spool,
    UNDERSTUDY_NAME: 'app',
    ...extra,
  });
  return {
    server, dir, primary, standby, spool, state, env,
    runApp: (s) => runNode(s.file, s.code, s.args ?? [], env(s.env), s.withAgent ?? true, dir),
    drain: (name, extra = {}) => new Replayer({
      nats: { url: server.url, replicas: 1 }, stream: 'UNDERSTUDY', roots: parseRoots(`data=${standby}`), name,
      stateDir: state, drain: true, log: () => undefined, ...extra,
    }).run(),
    async close() {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A replayer that keeps following the pair's stream (serving verify, as on a real standby) until stopped. */
export function followReplayer(pair: Pair): () => Promise<void> {
  const ac = new AbortController();
  const running = new Replayer({
    nats: { url: pair.server.url, replicas: 1 }, stream: 'UNDERSTUDY', roots: parseRoots(`data=${pair.standby}`),
    stateDir: pair.state, drain: false, log: () => undefined,
  }).run(ac.signal);
  return async () => {
    ac.abort();
    await running;
  };
}

/** Runs `understudy <args>` and collects what it printed. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return collect(spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** What a child started with piped stdout and stderr printed, and how it ended. */
export function collect(child: ChildProcessWithoutNullStreams | ChildProcessByStdio<null, Readable, Readable>): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function runNode(file: string | undefined, code: string | undefined, args: string[], env: NodeJS.ProcessEnv, withAgent: boolean, dir: string): Promise<RunResult> {
  let script = file;
  if (script === undefined) {
    script = path.join(dir, `app-${Math.random().toString(36).slice(2)}.js`);
    fs.writeFileSync(script, code ?? '');
  }
  const argv = [...(withAgent ? ['--require', PRELOAD] : []), script, ...args];
  return collect(spawn(process.execPath, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] }));
}
