import { connect } from '@nats-io/transport-node';
import { splitMessage } from '../../lib/batch';
import { decodeEntry } from '../../lib/codec';
import type { Entry } from '../../lib/entry';
import { readStream } from '../../replayer/journal-reader';

/** Every entry the stream holds, by journal, in sequence order (duplicates of a resend dropped). */
export async function streamEntries(url: string, stream = 'UNDERSTUDY'): Promise<Map<string, Entry[]>> {
  const nc = await connect({ servers: url });
  const byJournal = new Map<string, Map<string, Entry>>();
  try {
    for await (const m of readStream(nc, stream, {})) {
      for (const buf of splitMessage(m.data)) {
        const e = decodeEntry(buf);
        const h = e.header;
        let j = byJournal.get(h.j);
        if (j === undefined) byJournal.set(h.j, (j = new Map()));
        j.set(`${h.e}.${h.s}`, e);
      }
    }
  } finally {
    await nc.close();
  }
  const out = new Map<string, Entry[]>();
  for (const [j, m] of byJournal) out.set(j, [...m.values()].sort((a, b) => a.header.e - b.header.e || a.header.s - b.header.s));
  return out;
}
