/**
 * Pull catch-up: the replayer asks for entries it found missing from the stream
 * (purged, deleted, lost with a server's store); they are still in the spool,
 * which keeps everything until the standby has applied it.
 */
import { DEFAULTS } from '../../lib/settings';
import { SpoolCursor } from '../../lib/spool-reader';
import type { SpoolRecord } from '../../lib/spool';
import type { ResendReply, ResendRequest } from '../../lib/subjects';
import type { JournalTransport } from '../../lib/transport/journal-transport';
import { batches, type MessageMaker } from './messages';
import type { ShippingJournal } from './shipping-journal';

/** Answers a standby's resend requests for one journal from its spool. */
export class ResendService {
  constructor(
    private readonly j: ShippingJournal,
    private readonly transport: JournalTransport,
    private readonly messages: MessageMaker,
    private readonly maxBytes: number = DEFAULTS.ship.resendMaxBytes,
  ) {}

  /** Begins answering requests that come through the transport (a standby that asks before the server has the subscription asks again later). */
  serve(): void {
    this.transport.serveResends((req) => this.answer(req)).catch(() => undefined);
  }

  /** Publishes again, tagged so as not to be de-duplicated, what the spool holds of `req`'s range. */
  async answer(req: ResendRequest): Promise<ResendReply> {
    if (!Number.isSafeInteger(req.from) || !Number.isSafeInteger(req.to) || req.from < 1 || req.to < req.from) {
      return { resent: 0, error: `bad range ${req.from}..${req.to}` };
    }
    const to = Math.min(req.to, this.j.appended());
    // What is older than the spool's first entry was trimmed once a standby applied it: say where it begins.
    const oldest = this.j.oldestSpooled();
    const from = oldest !== undefined && req.from < oldest.s ? oldest.s : req.from;
    const cursor = new SpoolCursor(this.j.dir, from);
    let records: SpoolRecord[];
    try {
      records = from <= to ? cursor.read(to, this.maxBytes) : [];
    } finally {
      cursor.close();
    }
    const requestedAt = Date.now();
    for (const b of batches(records)) await this.transport.publish(this.messages.resend(b, requestedAt));
    return { resent: records.length, oldest: from > req.from ? oldest : undefined };
  }
}
