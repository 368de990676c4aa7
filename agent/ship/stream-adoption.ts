/**
 * Where shipping begins in a stream, and what to do when the spool no longer reaches back to
 * the entry due next. Both move the acked position; the ship loop seeks its cursor after them.
 */
import { lastEntry } from '../../lib/batch';
import { decodeEntry } from '../../lib/codec';
import { replaceJson } from '../../lib/durable-file';
import { DEFAULTS } from '../../lib/settings';
import type { SpoolGapError } from '../../lib/spool-reader';
import type { JournalTransport, StreamIdentity } from '../../lib/transport/journal-transport';
import { warnOnce } from '../log';
import { lostBetween, recordLost } from '../spool-gap';
import type { ShippingJournal } from './shipping-journal';
import type { StateReporter } from './state-reporter';

/** Adopts streams and passes spool gaps for one journal. */
export class StreamAdoption {
  constructor(
    private readonly j: ShippingJournal,
    private readonly transport: JournalTransport,
    private readonly reporter: StateReporter,
    private readonly checkTimeoutMs: number = DEFAULTS.ship.streamCheckTimeoutMs,
  ) {}

  /**
   * The stream is part of the journal's history. One this journal has not shipped to before
   * (a new server, a stream deleted and made again) holds none of what went to the old one:
   * shipping starts again there from the oldest entry the spool still has, so a standby that
   * applied up to where the spool begins goes on without a gap, and the heartbeat says where
   * the journal's history in this stream begins, so a standby that needs what came before
   * knows it will never come (it needs a baseline) instead of waiting for it.
   * Returns the seq to ship from again, when shipping must go back.
   */
  adopt(info: StreamIdentity): number | undefined {
    const { j } = this;
    if (j.origin !== undefined && j.origin.stream === j.stream && j.origin.created === info.created) return undefined;
    const known = j.origin !== undefined;
    const acked = j.acked.current;
    const oldest = j.oldestSpooled();
    const from = oldest === undefined ? { epoch: j.epoch, seq: acked.seq + 1 } : { epoch: oldest.e, seq: Math.min(oldest.s, acked.seq + 1) };
    j.origin = { stream: j.stream, created: info.created, epoch: from.epoch, seq: from.seq };
    replaceJson(j.files.origin, j.origin);
    let back: number | undefined;
    if (from.seq <= acked.seq) {
      j.acked.set({ epoch: from.epoch, seq: from.seq - 1 });
      back = from.seq;
    }
    if (known || from.seq > 1) {
      warnOnce('new-stream', `journal "${j.name}" ships to a stream ${j.stream} it has not shipped to before (created ${info.created}); its history there begins at entry ${from.seq}${from.seq > 1 ? `: a standby that has not applied entries 1..${from.seq - 1} needs \`understudy baseline\`` : ''}`);
    }
    return back;
  }

  /**
   * The spool begins after the entry due next: go on from its oldest entry, and if what lies in
   * between is neither applied on the standby nor in the stream, record it as lost and say so.
   * False while the state bucket, which tells what the standby applied, is not open yet.
   */
  async passGap(gap: SpoolGapError): Promise<boolean> {
    const { j } = this;
    const store = this.reporter.store;
    if (store === undefined) return false;
    const applied = await store.read('applied', j.name).then((r) => r?.s, () => null);
    if (applied === null) return false;
    const last = await this.transport.lastMessage({ timeoutMs: this.checkTimeoutMs }).catch(() => undefined);
    let streamSeq: number | undefined;
    try {
      streamSeq = last === undefined ? undefined : decodeEntry(lastEntry(last)).header.s;
    } catch {
      streamSeq = undefined; // a message we cannot read vouches for nothing
    }
    const missing = lostBetween(gap.wanted, gap.oldest, { appliedSeq: applied, streamSeq });
    if (missing !== undefined) {
      const reason = `entries ${missing.from}..${missing.to} were gone from the agent's spool (it begins at ${gap.oldest}) before the stream or the standby had them`;
      j.lost = recordLost(j.dir, { ...missing, at: Date.now(), reason });
      warnOnce(`lost:${missing.from}`, `journal "${j.name}": ${reason}; shipping goes on from ${gap.oldest}, and the standby differs by them until a baseline (understudy status says so)`);
      // Reported before anything after the gap is shipped: a process that exits once that is done must have said it.
      await this.reporter.beat();
    }
    const head = j.oldestSpooled();
    // Nothing before the oldest entry can be shipped any more: the next process resumes there too.
    j.acked.set({ epoch: head?.e ?? j.acked.current.epoch, seq: gap.oldest - 1 });
    j.acked.save(true);
    return true;
  }
}
