import { DeliverPolicy, jetstream, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { allJournalsSubject, journalSubject } from '../lib/subjects';
import { DEFAULTS } from '../lib/settings';

/**
 * Reads stored journal messages in stream order from `fromSeq`, stopping at the
 * end of what the stream holds now (or after `limit` messages).
 */
export async function* readStream(nc: NatsConnection, stream: string, opts: { name?: string; fromSeq?: number; limit?: number }): AsyncGenerator<JsMsg> {
  const consumer = await jetstream(nc).consumers.get(stream, {
    filter_subjects: opts.name === undefined ? allJournalsSubject(stream) : journalSubject(stream, opts.name),
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: Math.max(1, opts.fromSeq ?? 1),
  });
  if ((await consumer.info(true)).num_pending === 0) return;
  const messages = await consumer.consume({ max_messages: DEFAULTS.standby.inspectBatch });
  let n = 0;
  try {
    for await (const m of messages) {
      yield m;
      n++;
      if (m.info.pending === 0 || (opts.limit !== undefined && n >= opts.limit)) break;
    }
  } finally {
    messages.stop();
  }
}
