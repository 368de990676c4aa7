import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { PRELOAD, type Pair } from './pair';
import { openStateKv } from '../../lib/nats';
import { readState } from '../../lib/state-bucket';

/** Starts `code` under the agent as a long-running app (DATA: the pair's primary root); it and a child whose pid it left in child.pid are killed in teardown. */
export function startApp(pair: Pair, code: string, t: { teardown(fn: () => void): void }): ChildProcess {
  const file = path.join(pair.dir, `app-${Math.random().toString(36).slice(2)}.js`);
  fs.writeFileSync(file, code);
  const app = spawn(process.execPath, ['--require', PRELOAD, file], { env: pair.env({ DATA: pair.primary }), stdio: ['ignore', 'inherit', 'inherit'] });
  t.teardown(() => {
    try {
      const pid = Number(fs.readFileSync(path.join(pair.primary, 'child.pid'), 'utf8'));
      process.kill(pid, 'SIGCONT');
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
    app.kill('SIGKILL');
  });
  return app;
}

/** Polls `cond` until it holds; throws naming `what` after `ms`. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The number a counter file holds (0 while it is absent). */
export function readNumber(file: string): number {
  try {
    return Number(fs.readFileSync(file, 'utf8')) || 0;
  } catch {
    return 0;
  }
}

/** Journals whose heartbeat is fresh. */
export async function liveJournals(pair: Pair): Promise<string[]> {
  const nc = await connect({ servers: pair.server.url });
  try {
    const kv = await openStateKv(nc, 'UNDERSTUDY');
    // A set: a key updated while the keys are listed (a heartbeat) can be listed twice, and a
    // checkpoint prepared twice on one journal answers "in progress here" (a full run saw it).
    const names = new Set<string>();
    for await (const k of await kv.keys('agent.*')) {
      const beat = await readState(kv, 'agent', k.slice('agent.'.length));
      if (beat !== undefined && Date.now() - beat.time < 3000) names.add(k.slice('agent.'.length));
    }
    return [...names];
  } finally {
    await nc.close();
  }
}

