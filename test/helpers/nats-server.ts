import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/** A nats-server with JetStream, on a free loopback port with its own store; for tests, demo and benches. */
export interface NatsServer {
  url: string;
  port: number;
  storeDir: string;
  process: ChildProcess;
  stop(): Promise<void>;
  /** Stops and deletes the store directory. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** A port nobody listens on now, on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * What a test server may reserve for JetStream. Left to itself nats-server allows 75 % of the
 * disk's free space, and a stream reserves its whole max_bytes (8 GiB): on a machine with less
 * free disk every stream is made smaller and the agent says so, which the tests would read as a
 * failure. The reservation is bookkeeping only; a test stores a few MiB. Configs of tests that
 * want a small store (stream-size, slots) set their own.
 */
const TEST_JETSTREAM_LIMITS = 'max_file_store: 1TB';

/** The `jetstream {}` block of a test server's config file: its store, and the fixed limit above. */
export function jetstreamBlock(storeDir: string): string {
  return `jetstream { store_dir: "${storeDir}", ${TEST_JETSTREAM_LIMITS} }`;
}

/** Starts `nats-server -js` from PATH; fails clearly when it is not installed. */
export async function startNatsServer(opts: { storeDir?: string; port?: number; args?: string[]; config?: (port: number, storeDir: string) => string } = {}): Promise<NatsServer> {
  if (spawnSync('nats-server', ['--version']).error !== undefined) {
    throw new Error('nats-server not found on PATH (apt-get install nats-server)');
  }
  const port = opts.port ?? (await freePort());
  const storeDir = opts.storeDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-nats-'));
  let args: string[];
  if (opts.config === undefined) {
    fs.mkdirSync(storeDir, { recursive: true });
    const limits = path.join(storeDir, 'limits.conf');
    fs.writeFileSync(limits, `jetstream { ${TEST_JETSTREAM_LIMITS} }\n`);
    args = ['-c', limits, '-js', '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir, ...(opts.args ?? [])];
  } else {
    // A config file owns the listen address and the store; flags would clash with it.
    const file = path.join(storeDir, '..', `nats-${port}.conf`);
    fs.writeFileSync(file, opts.config(port, storeDir));
    args = ['-c', file];
  }
  const child = spawn('nats-server', args, {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nats-server did not start on port ${port}:\n${log}`)), 10_000);
    child.stderr?.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.includes('Server is ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited with ${code}:\n${log}`));
    });
  });
  child.stderr?.resume();
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  };
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    process: child,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
      fs.rmSync(storeDir, { recursive: true, force: true });
    },
  };
}
