import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { openStateKv, stateKeys } from '../../lib/nats';
import { parseStateKey, readState, type FenceRecord } from '../../lib/state-bucket';
import type { Quarantine, QuarantineList } from '../quarantine';
import { collectStatus, type StatusReport } from './collect';
import { History, type Sample } from './history';

/** What /status.json answers: what `status --json` prints, and what only the page shows. */
export interface PageData extends StatusReport {
  /** Promotions: the journals a promote fenced, where and by whom. */
  fences: (FenceRecord & { journal: string })[];
  quarantine: QuarantineList;
  history: readonly Sample[];
  /** The standby whose replayer serves the page. */
  this_standby: string;
  /** When the data was read (ISO): the page says when it is old. */
  sampled_at: string;
  /** Set while reading fails: the data is the last that was read. */
  collect_error?: { message: string; since: string };
}

export interface SamplerOptions {
  nc: NatsConnection;
  stream: string;
  /** Only this journal (replay --name). */
  journal?: string;
  quarantine: Quarantine;
  quarantineListed: number;
  standby: string;
  everyMs: number;
  historyMs: number;
}

/**
 * Reads what status says on a timer, one read at a time: a read still running when the
 * timer fires makes that sample skipped, so a slow NATS never has reads pile up on it.
 * Requests for the page's data are answered from the last read, never start one.
 */
export class StatusSampler {
  private readonly history: History;
  private latest: PageData | undefined;
  private failure: { message: string; since: string } | undefined;
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private first: Promise<void> | undefined;

  constructor(private readonly o: SamplerOptions) {
    this.history = new History(o.historyMs);
  }

  /** Reads once now, then every `everyMs` until `stop()`. */
  start(): void {
    this.first = this.sample();
    this.timer = setInterval(() => void this.sample(), this.o.everyMs);
  }

  /** The last data read, waiting for the first read; undefined (with why) when none succeeded yet. */
  async current(): Promise<PageData | { error: string }> {
    await this.first;
    if (this.latest === undefined) return { error: this.failure?.message ?? 'not read yet' };
    return this.failure === undefined ? this.latest : { ...this.latest, collect_error: this.failure };
  }

  /** Stops the timer and waits for a read in progress, so the connection can be closed under none. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  private sample(): Promise<void> {
    if (this.running !== undefined) return this.running;
    this.running = this.read().finally(() => (this.running = undefined));
    return this.running;
  }

  private async read(): Promise<void> {
    const { o } = this;
    try {
      const report = await collectStatus(o.nc, o.stream, o.journal);
      const fences = await readFences(o.nc, o.stream);
      const quarantine = await o.quarantine.list(o.quarantineListed);
      const now = Date.now();
      this.history.add(report, now);
      this.latest = { ...report, fences, quarantine, history: this.history.samples(), this_standby: o.standby, sampled_at: new Date(now).toISOString() };
      this.failure = undefined;
    } catch (err) {
      this.failure = { message: (err as Error).message, since: this.failure?.since ?? new Date().toISOString() };
    }
  }
}

/** The fence records promotions left in the state bucket, one per journal they closed. */
async function readFences(nc: NatsConnection, stream: string): Promise<PageData['fences']> {
  const kv = await openStateKv(nc, stream);
  const out: PageData['fences'] = [];
  for (const k of await stateKeys(await jetstreamManager(nc), stream)) {
    const key = parseStateKey(k);
    if (key?.kind !== 'fence') continue;
    const f = await readState(kv, 'fence', key.name);
    if (f !== undefined) out.push({ journal: key.name, ...f });
  }
  return out;
}
