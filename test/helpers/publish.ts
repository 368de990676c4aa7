import { jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { connect, headers } from '@nats-io/transport-node';
import { encodeEntry } from '../../lib/codec';
import type { EntryHeader } from '../../lib/entry';
import { ensureStream } from '../../lib/nats';
import { journalSubject, msgId } from '../../lib/subjects';
import { readStream } from '../../replayer/journal-reader';

/** An entry to put straight into the stream, as an attacker or a broken agent could. */
export interface Crafted {
  header: EntryHeader;
  data?: Buffer;
  /** Bytes to publish instead of the encoded entry. */
  raw?: Uint8Array;
  /** Message headers (a signature, say). */
  hdrs?: Record<string, string>;
  /** Message id; a fresh one defeats JetStream's de-duplication, as a replay attack would. */
  id?: string;
}

/** Publishes crafted entries on their journals' subjects. */
export async function publish(url: string, entries: Crafted[]): Promise<void> {
  const nc = await connect({ servers: url });
  await ensureStream(await jetstreamManager(nc), 'UNDERSTUDY');
  const js = jetstream(nc);
  for (const e of entries) {
    const h = headers();
    for (const [k, v] of Object.entries(e.hdrs ?? {})) h.set(k, v);
    await js.publish(journalSubject('UNDERSTUDY', e.header.j), e.raw ?? encodeEntry(e.header, e.data), {
      msgID: e.id ?? msgId(e.header.j, e.header.e, e.header.s), headers: h,
    });
  }
  await nc.close();
}

/** Every message the stream holds now: data and headers. */
export async function storedMessages(url: string): Promise<{ data: Uint8Array; hdrs: Record<string, string> }[]> {
  const nc = await connect({ servers: url });
  const out: { data: Uint8Array; hdrs: Record<string, string> }[] = [];
  for await (const m of readStream(nc, 'UNDERSTUDY', {}) as AsyncGenerator<JsMsg>) {
    const hdrs: Record<string, string> = {};
    for (const k of m.headers?.keys() ?? []) hdrs[k] = m.headers?.get(k) ?? '';
    out.push({ data: m.data, hdrs });
  }
  await nc.close();
  return out;
}
