import * as path from 'node:path';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type { AgentSettings } from '../lib/settings';
import { ACKED, APPENDED, APPLIED, HURRY, REPORTED, createShared, publishPosition, readPosition, waitForPosition } from './shared-state';
import type { ShipperData } from './ship/shipping-journal';
import type { Journal } from './journal';
import { warnOnce } from './log';

/** The application thread's handle on the shipper worker. */
export class Shipper {
  readonly shared: BigInt64Array;
  /** Set before start: the worker also serves rebase requests over the agent's roots (agent/ship/rebase-service). */
  servesRebases = false;
  /** Set before start: the application's gate listens on `control`, so the worker may take part in checkpoints. */
  servesCheckpoints = false;
  private worker: Worker | undefined;
  /**
   * The application thread's end of the control channel (checkpoint commits, agent/freeze); the
   * other end goes to the worker. Made now, so the gate listens before the worker starts.
   */
  readonly control: MessagePort;
  private readonly workerControl: MessagePort;

  /** `shared`: positions kept where another thread can see them too (a worker thread's journal, see threads.ts). */
  constructor(private readonly settings: AgentSettings, private readonly dir: string, private readonly epoch: number, shared?: BigInt64Array) {
    this.shared = shared ?? createShared();
    const channel = new MessageChannel();
    this.control = channel.port1;
    this.workerControl = channel.port2;
  }

  /** Starts the worker; it must not keep the application alive, nor load the agent again. */
  start(lastSeq: number): void {
    publishPosition(this.shared, APPENDED, lastSeq);
    const data: ShipperData = {
      nats: this.settings.nats, stream: this.settings.stream, name: this.settings.name,
      dir: this.dir, epoch: this.epoch, mode: this.settings.mode, shared: this.shared, signingKey: this.settings.signingKey,
      firstSeq: lastSeq + 1, spoolFsync: this.settings.spoolFsync,
      ...(this.servesCheckpoints ? { control: this.workerControl } : {}),
      ...(this.servesRebases ? { rebaseRoots: this.settings.roots.map((r) => `${r.name}=${r.dir}`) } : {}),
    };
    // execArgv: [] drops a --require of the agent, but NODE_OPTIONS loads it in every worker
    // thread all the same (Node 20): UNDERSTUDY_DISABLE is what keeps it from journaling here.
    const env = { ...process.env, UNDERSTUDY_DISABLE: '1' };
    this.worker = new Worker(path.join(__dirname, 'shipper-worker.js'), { workerData: data, transferList: this.servesCheckpoints ? [this.workerControl] : [], execArgv: [], env, stdout: false, stderr: false });
    this.worker.unref();
    this.worker.on('error', (err) => warnOnce('worker', `shipper stopped (${err.message}); entries stay spooled in ${this.dir}`));
  }

  /**
   * Starts the worker at `journal`'s first append rather than now: a worker thread that never
   * changes anything under the roots (a pool of CPU workers) then costs no shipper thread and
   * no NATS connection.
   */
  startOnFirstAppend(journal: Journal, lastSeq: number): void {
    journal.onAppend = (seq) => {
      this.start(lastSeq);
      this.attach(journal);
      this.notify(seq);
    };
  }

  /** Stops the worker (a journal adopted for its backlog, once that is shipped). */
  stop(): Promise<number> {
    return this.worker?.terminate() ?? Promise.resolve(0);
  }

  /** Wakes the worker for every append to `journal`. */
  attach(journal: Journal): void {
    journal.onAppend = (seq) => this.notify(seq);
  }

  /** Tells the worker a new entry is in the spool. */
  notify(seq: number): void {
    publishPosition(this.shared, APPENDED, seq);
  }

  /** Blocks until JetStream has every spooled entry or the timeout passes; true when all were shipped. */
  flush(timeoutMs: number): boolean {
    const appended = readPosition(this.shared, APPENDED);
    if (readPosition(this.shared, ACKED) >= appended) return true;
    this.hurry();
    return waitForPosition(this.shared, ACKED, appended, timeoutMs);
  }

  /** Asks the worker to ship what is spooled now, without lingering for more (someone is waiting for it). */
  hurry(): void {
    publishPosition(this.shared, HURRY, readPosition(this.shared, APPENDED));
  }

  /** Blocks (bounded) until the worker has reported the current position in its heartbeat. */
  waitReported(timeoutMs: number): boolean {
    return waitForPosition(this.shared, REPORTED, readPosition(this.shared, APPENDED), timeoutMs);
  }

  /** Positions as the two threads see them now. */
  positions(): { appended: number; acked: number; applied: number } {
    return {
      appended: readPosition(this.shared, APPENDED),
      acked: readPosition(this.shared, ACKED),
      applied: readPosition(this.shared, APPLIED),
    };
  }
}
