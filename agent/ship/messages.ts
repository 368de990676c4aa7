/**
 * Spooled entries made into messages: grouped into batches, framed (lib/batch), named by the
 * entries they carry, and signed when a key is set. Signing happens here, off the application's
 * thread: Ed25519 costs tens of microseconds an entry.
 */
import { encodeFrames, frameBytes, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES } from '../../lib/batch';
import type { Signer } from '../../lib/signing';
import type { SpoolRecord } from '../../lib/spool';
import { msgId } from '../../lib/subjects';
import type { JournalMessage } from '../../lib/transport/journal-transport';

/** Consecutive records grouped into messages of at most MAX_BATCH_ENTRIES entries and MAX_BATCH_BYTES. */
export function* batches(records: SpoolRecord[]): Generator<SpoolRecord[]> {
  let batch: SpoolRecord[] = [];
  let bytes = 0;
  for (const r of records) {
    if (batch.length > 0 && (batch.length >= MAX_BATCH_ENTRIES || bytes + frameBytes(r) > MAX_BATCH_BYTES)) {
      yield batch;
      batch = [];
      bytes = 0;
    }
    batch.push(r);
    bytes += frameBytes(r);
  }
  if (batch.length > 0) yield batch;
}

/** Makes a journal's messages. */
export class MessageMaker {
  constructor(private readonly name: string, private readonly signer: Signer | undefined) {}

  /** One message of consecutive entries; its id names the first and last entry (name.epoch.seq[-last]). */
  make(batch: SpoolRecord[]): JournalMessage {
    const body = encodeFrames(batch);
    const first = batch[0];
    const last = batch[batch.length - 1];
    const id = msgId(this.name, first.epoch, first.seq) + (last.seq !== first.seq ? `-${last.seq}` : '');
    return { id, body, signature: this.signer === undefined ? undefined : `${this.signer.keyId}:${this.signer.sign(body)}` };
  }

  /**
   * The same message sent again for a resend request made at `requestedAt`: tagged so that it is
   * not de-duplicated away (the stream may have held, then lost, the first).
   */
  resend(batch: SpoolRecord[], requestedAt: number): JournalMessage {
    const msg = this.make(batch);
    return { ...msg, id: `${msg.id}.again.${requestedAt}` };
  }
}
