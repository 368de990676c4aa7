import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLI } from './pair';

/** A following `understudy replay` in its own process, as a standby host runs it. */
export interface StandbyProc {
  name: string;
  dir: string;
  state: string;
  /** What it logged so far. */
  log(): string;
  /** Waits until its log matches `re` (rejects after `ms`, with the log). */
  waitFor(re: RegExp, ms?: number): Promise<void>;
  /** SIGTERM, and waits for it to end; resolves to its exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL (a crash at this instant), and waits for it to end. */
  kill(): Promise<void>;
}

/** Starts standby `name` with its own tree and --state under `base`, following the stream at `url`. */
export function startStandby(base: string, name: string, url: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): StandbyProc {
  const dir = path.join(base, `standby-${name}`);
  const state = path.join(base, `state-${name}`);
  fs.mkdirSync(dir, { recursive: true });
  let log = '';
  const child: ChildProcess = spawn(process.execPath, [CLI, 'replay', '--root', `data=${dir}`, '--state', state, '--standby', name, ...args], {
    env: { ...process.env, UNDERSTUDY_NATS_URL: url, ...env }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  const ended = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    name, dir, state,
    log: () => log,
    async waitFor(re, ms = 30_000) {
      const until = Date.now() + ms;
      while (!re.test(log)) {
        if (Date.now() > until) throw new Error(`standby ${name} never logged ${re}; it logged:\n${log}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return ended;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await ended;
    },
  };
}
