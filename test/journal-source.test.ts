import test from 'ava';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers } from '@nats-io/transport-node';
import { SIGNATURE_HEADER } from '../lib/signing';
import { journalSubject } from '../lib/subjects';
import { JetStreamSource } from '../replayer/source/jetstream';
import type { JournalReader, JournalSource, SourceMessage } from '../replayer/source/journal-source';
import { MemorySource } from '../replayer/source/memory';
import { startNatsServer } from './helpers/nats-server';

/** One implementation under test, with the ways a test puts messages into its stream. */
interface Harness {
  source: JournalSource;
  /** Publishes a message of `journal`, as an agent would; returns its stream sequence. */
  append(journal: string, data: string, signature?: string): Promise<number>;
  /** Deletes the stream and makes it again. */
  remake(): Promise<void>;
  close(): Promise<void>;
}

const implementations: { name: string; make: () => Promise<Harness> }[] = [
  {
    name: 'memory',
    async make() {
      const m = new MemorySource('UNDERSTUDY');
      return { source: m, append: async (j, d, sig) => m.append(j, Buffer.from(d), sig), remake: async () => m.remake(), close: async () => undefined };
    },
  },
  {
    name: 'jetstream',
    async make() {
      const server = await startNatsServer();
      const nc = await connect({ servers: server.url });
      const source = await JetStreamSource.connect(nc, 'UNDERSTUDY', 1, (_what, fn) => fn(), () => undefined);
      const js = jetstream(nc);
      const jsm = await jetstreamManager(nc);
      return {
        source,
        async append(j, d, sig) {
          const h = headers();
          if (sig !== undefined) h.set(SIGNATURE_HEADER, sig);
          return (await js.publish(journalSubject('UNDERSTUDY', j), Buffer.from(d), { headers: h })).seq;
        },
        async remake() {
          await jsm.streams.delete('UNDERSTUDY');
          await source.ensure();
        },
        async close() {
          await nc.close();
          await server[Symbol.asyncDispose]();
        },
      };
    },
  },
];

interface Seen { seq: number; subject: string; data: string; signature?: string; pending: number }
const seen = (m: SourceMessage): Seen => ({ seq: m.seq, subject: m.subject, data: Buffer.from(m.data).toString(), signature: m.signature, pending: m.pending });
const subj = (j: string): string => journalSubject('UNDERSTUDY', j);

async function collect(reader: JournalReader, each?: (m: Seen, all: Seen[]) => Promise<void>): Promise<Seen[]> {
  const all: Seen[] = [];
  for await (const m of reader) {
    all.push(seen(m));
    await each?.(seen(m), all);
  }
  return all;
}

/** The stream most cases start from: a, b (signed), a. */
async function threeMessages(h: Harness): Promise<void> {
  await h.append('a', 'one');
  await h.append('b', 'two', 'key:c2ln');
  await h.append('a', 'three');
}

const cases: { name: string; run: (h: Harness, t: import('ava').ExecutionContext) => Promise<void> }[] = [
  {
    name: 'reads from a position in order: bytes, subject, signature, and what is still pending',
    async run(h, t) {
      await threeMessages(h);
      const reader = await h.source.open({ fromSeq: 2, toEnd: true });
      t.false(reader.caughtUp);
      t.deepEqual(await collect(reader), [
        { seq: 2, subject: subj('b'), data: 'two', signature: 'key:c2ln', pending: 1 },
        { seq: 3, subject: subj('a'), data: 'three', signature: undefined, pending: 0 },
      ]);
      t.true(reader.caughtUp);
      t.is(await reader.remaining(), 0);
    },
  },
  {
    name: 'reads one journal only, its pending counts its own messages',
    async run(h, t) {
      await threeMessages(h);
      const all = await collect(await h.source.open({ fromSeq: 1, journal: 'a', toEnd: true }));
      t.deepEqual(all.map((m) => [m.seq, m.data, m.pending]), [[1, 'one', 1], [3, 'three', 0]]);
    },
  },
  {
    name: 'reports the stream\'s last message, that of a journal, and the stream\'s identity',
    async run(h, t) {
      await threeMessages(h);
      const info = await h.source.info();
      t.is(info.lastSeq, 3);
      t.true(info.created.length > 0);
      t.true(info.bytes > 0);
      const lastA = await h.source.lastOf('a');
      t.is(lastA?.seq, 3);
      t.is(Buffer.from(lastA!.data).toString(), 'three');
      t.is((await h.source.lastOf('b'))?.seq, 2);
      t.is(await h.source.lastOf('nobody'), undefined);
    },
  },
  {
    name: 'a reader opened past the last message is caught up; a drain reader then yields nothing',
    async run(h, t) {
      await threeMessages(h);
      const behind = await h.source.open({ fromSeq: 1, toEnd: true });
      t.false(behind.caughtUp);
      t.is(await behind.remaining(), 3);
      behind.stop();
      t.deepEqual(await collect(behind), [], 'stopped before reading: nothing is delivered');
      const atEnd = await h.source.open({ fromSeq: 4, toEnd: true });
      t.true(atEnd.caughtUp);
      t.is(await atEnd.remaining(), 0);
      t.deepEqual(await collect(atEnd), []);
    },
  },
  {
    name: 'a follower gets what is published after it opened, and stops when told',
    async run(h, t) {
      await threeMessages(h);
      const reader = await h.source.open({ fromSeq: 3, toEnd: false, created: (await h.source.info()).created });
      const all = await collect(reader, async (m) => {
        if (m.seq === 3) await h.append('b', 'four');
        if (m.seq === 4) reader.stop();
      });
      t.deepEqual(all.map((m) => [m.seq, m.data, m.pending]), [[3, 'three', 0], [4, 'four', 0]]);
      t.true(reader.caughtUp);
    },
  },
  {
    name: 'a follower stops when the stream is deleted and made again; the new one numbers from 1',
    async run(h, t) {
      await threeMessages(h);
      const reader = await h.source.open({ fromSeq: 4, toEnd: false, created: (await h.source.info()).created });
      const reading = collect(reader);
      const before = (await h.source.info()).created;
      await h.remake();
      t.deepEqual(await reading, []);
      const info = await h.source.info();
      t.not(info.created, before);
      t.is(info.lastSeq, 0);
      t.is(await h.append('a', 'again'), 1);
    },
  },
];

for (const impl of implementations) {
  for (const c of cases) {
    test.serial(`journal source (${impl.name}): ${c.name}`, async (t) => {
      const h = await impl.make();
      t.teardown(() => h.close());
      await c.run(h, t);
    });
  }
}
