import test from 'ava';
import { checkpointSubject, parseCheckpointReply, type CheckpointReply } from '../lib/checkpoint-protocol';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { SIGNATURE_HEADER } from '../lib/signing';
import { resendSubject, type ResendReply, type ResendRequest } from '../lib/subjects';
import type { AgentHeartbeat, AppliedRecord, RebaseRecord, StateEntry } from '../lib/state-bucket';
import { JetStreamTransport } from '../lib/transport/jetstream';
import type { JournalMessage, JournalTransport } from '../lib/transport/journal-transport';
import { MemoryTransport } from '../lib/transport/memory';
import { startNatsServer, type NatsServer } from './helpers/nats-server';

/**
 * The JournalTransport contract: one list of cases, run against the memory transport and the
 * JetStream one over a real nats-server. What the shipper relies on of either is here.
 */

/** A transport under test and what a test sees of the other side. */
interface Harness {
  transport: JournalTransport;
  /** What the stream holds of the journal, in order. */
  stored(): Promise<JournalMessage[]>;
  /** A standby's resend request, sent as it is. */
  requestResend(text: string): Promise<ResendReply>;
  /** `understudy checkpoint`'s request, sent as it is. */
  requestCheckpoint(text: string): Promise<CheckpointReply>;
  deleteStream(): Promise<void>;
  /** Moves the transport's connection to another server (the JetStream one: the server restarted on its port). */
  reconnect(): Promise<void>;
  close(): Promise<void>;
}

const NAME = 'app';
let server: NatsServer | undefined;
let streams = 0;

async function jetstreamHarness(): Promise<Harness> {
  server ??= await startNatsServer();
  const stream = `CONTRACT${++streams}`;
  const transport = await JetStreamTransport.connect({ nats: { url: server.url, replicas: 1 }, stream, name: NAME });
  const peer: NatsConnection = await connect({ servers: server.url });
  const jsm = await jetstreamManager(peer);
  return {
    transport,
    async stored() {
      const info = await jsm.streams.info(stream).catch(() => undefined);
      const out: JournalMessage[] = [];
      if (info === undefined || info.state.messages === 0) return out;
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const m = await jsm.streams.getMessage(stream, { seq });
        if (m === null) continue;
        out.push({ id: m.header.get('Nats-Msg-Id'), body: m.data, signature: m.header.get(SIGNATURE_HEADER) || undefined });
      }
      return out;
    },
    async requestResend(text) {
      const reply = await peer.request(resendSubject(stream, NAME), text, { timeout: 5000 });
      return JSON.parse(reply.string()) as ResendReply;
    },
    async requestCheckpoint(text) {
      const reply = await peer.request(checkpointSubject(stream, NAME), text, { timeout: 5000 });
      return parseCheckpointReply(reply.string());
    },
    async deleteStream() {
      await jsm.streams.delete(stream);
    },
    async reconnect() {
      const old = server as NatsServer;
      await old.stop();
      server = await startNatsServer({ port: old.port, storeDir: old.storeDir });
    },
    async close() {
      await transport.close();
      // Each stream reserves its max_bytes on the shared server; left behind, ten of them
      // fill a CI machine's smaller disk and the next one cannot be made.
      await jsm.streams.delete(stream).catch(() => undefined);
      await peer.close();
    },
  };
}

async function memoryHarness(): Promise<Harness> {
  const transport = new MemoryTransport();
  return {
    transport,
    stored: async () => transport.messages.map(({ id, body, signature }) => ({ id, body, signature })),
    requestResend: (text) => transport.requestResend(text),
    requestCheckpoint: (text) => transport.requestCheckpoint(text),
    deleteStream: async () => transport.deleteStream(),
    reconnect: async () => transport.reconnect(),
    close: () => transport.close(),
  };
}

const IMPLEMENTATIONS: [string, () => Promise<Harness>][] = [['memory', memoryHarness], ['jetstream', jetstreamHarness]];

const msg = (id: string, text: string, signature?: string): JournalMessage => ({ id, body: Buffer.from(text), signature });
const text = (m: JournalMessage): string => Buffer.from(m.body).toString();

type Case = [string, (h: Harness, t: import('ava').ExecutionContext) => Promise<void>];

const CASES: Case[] = [
  ['publishes are acked in order and the stream holds them as sent', async (h, t) => {
    await h.transport.ensureStream();
    const acks = [];
    for (let i = 1; i <= 3; i++) acks.push(await h.transport.publish(msg(`${NAME}.1.${i}`, `entry ${i}`, i === 2 ? 'key:sig' : undefined)));
    t.true(acks.every((a) => !a.duplicate));
    t.true(acks[0].seq < acks[1].seq && acks[1].seq < acks[2].seq, JSON.stringify(acks));
    const stored = await h.stored();
    t.deepEqual(stored.map((m) => [m.id, text(m), m.signature]), [
      ['app.1.1', 'entry 1', undefined], ['app.1.2', 'entry 2', 'key:sig'], ['app.1.3', 'entry 3', undefined],
    ]);
  }],
  ['a message published again under its id is a duplicate: the stream holds it once', async (h, t) => {
    await h.transport.ensureStream();
    const first = await h.transport.publish(msg('app.1.1-5', 'five entries'));
    const again = await h.transport.publish(msg('app.1.1-5', 'five entries'));
    t.false(first.duplicate);
    t.true(again.duplicate);
    t.is(again.seq, first.seq);
    t.is((await h.stored()).length, 1);
  }],
  ['a resend tagged .again. is not de-duplicated against the first publish', async (h, t) => {
    await h.transport.ensureStream();
    await h.transport.publish(msg('app.1.7', 'seven'));
    const resent = await h.transport.publish(msg('app.1.7.again.1700000000000', 'seven'));
    t.false(resent.duplicate);
    t.deepEqual((await h.stored()).map((m) => m.id), ['app.1.7', 'app.1.7.again.1700000000000']);
  }],
  ['the journal\'s last message: none in a new stream, then the newest', async (h, t) => {
    await h.transport.ensureStream();
    t.is(await h.transport.lastMessage(), undefined);
    await h.transport.publish(msg('app.1.1', 'one'));
    await h.transport.publish(msg('app.1.2', 'two'));
    const last = await h.transport.lastMessage({ timeoutMs: 2000 });
    t.is(last === undefined ? undefined : Buffer.from(last).toString(), 'two');
  }],
  ['the stream keeps its identity until it is deleted; made again, it is another stream and holds nothing', async (h, t) => {
    const first = await h.transport.ensureStream();
    await h.transport.publish(msg('app.1.1', 'one'));
    t.deepEqual(await h.transport.ensureStream(), first);
    await h.deleteStream();
    await t.throwsAsync(h.transport.publish(msg('app.1.2', 'two'), { timeoutMs: 2000 }));
    // The shipper tells a new stream by its identity (agent/ship/stream-adoption): it must differ.
    const second = await h.transport.ensureStream({ timeoutMs: 2000 });
    t.notDeepEqual(second, first);
    t.deepEqual(await h.stored(), []);
    t.false((await h.transport.publish(msg('app.1.1', 'one'))).duplicate, 'the old stream\'s ids are not remembered');
  }],
  ['state records: absent, written, read back, and watched from the current one on', async (h, t) => {
    await h.transport.ensureStream();
    const store = await h.transport.openState();
    t.is(await store.read('applied', NAME), undefined);
    const one: AppliedRecord = { e: 1, s: 5, t: 100, appliedAt: 200 };
    await store.write('applied', NAME, one);
    t.deepEqual(await store.read('applied', NAME), one);
    const watch = store.watch('applied', NAME)[Symbol.asyncIterator]();
    t.deepEqual((await watch.next()).value, one);
    const two: AppliedRecord = { e: 1, s: 9, t: 300, appliedAt: 400 };
    await store.write('applied', NAME, two);
    t.deepEqual((await watch.next()).value, two);
    await watch.return?.();
    // Another kind under the same name is another record.
    t.is(await store.read('agent', NAME), undefined);
    const beat: AgentHeartbeat = { name: NAME, epoch: 1, mode: 'async', pid: 1, host: 'h', appended: 9, acked: { epoch: 1, seq: 9 }, time: 1, dropped: 0 };
    await store.write('agent', NAME, beat);
    t.deepEqual(await store.read('agent', NAME), beat);
    t.deepEqual(await store.read('applied', NAME), two);
  }],
  ['records of a kind are watched whatever their name, with revisions; a compare-and-set over a stale revision loses', async (h, t) => {
    await h.transport.ensureStream();
    const store = await h.transport.openState();
    const asked: RebaseRecord = { standby: 'east', state: 'requested', requested: 1 };
    await store.write('rebase', 'east', asked);
    await store.write('applied', 'east', { e: 1, s: 1, t: 1, appliedAt: 1 });
    const watch = store.watchEach('rebase')[Symbol.asyncIterator]();
    const first = (await watch.next()).value as StateEntry<'rebase'>;
    t.like(first, { name: 'east', record: asked });
    const taken = await store.update('rebase', 'east', { ...asked, state: 'running' }, first.revision);
    t.true(typeof taken === 'number' && taken > first.revision);
    t.is(await store.update('rebase', 'east', { ...asked, state: 'failed' }, first.revision), undefined, 'the revision it read is no longer the record\'s');
    t.like(await store.read('rebase', 'east'), { state: 'running' });
    t.like((await watch.next()).value, { name: 'east', revision: taken, record: { state: 'running' } });
    await store.write('rebase', 'west.app', { standby: 'west.app', state: 'requested', requested: 2 });
    t.like((await watch.next()).value, { name: 'west.app', record: { state: 'requested' } });
    await watch.return?.();
  }],
  ['a resend request reaches the handler parsed, and its reply comes back; a broken one is answered with why', async (h, t) => {
    await h.transport.ensureStream();
    const asked: ResendRequest[] = [];
    await h.transport.serveResends(async (req) => {
      asked.push(req);
      if (req.from > 100) throw new Error('nothing that far');
      return { resent: req.to - req.from + 1, oldest: { e: 1, s: 3 } };
    });
    t.deepEqual(await h.requestResend(JSON.stringify({ from: 3, to: 6 })), { resent: 4, oldest: { e: 1, s: 3 } });
    t.deepEqual(asked, [{ from: 3, to: 6 }]);
    t.deepEqual(await h.requestResend(JSON.stringify({ from: 200, to: 300 })), { resent: 0, error: 'nothing that far' });
    const broken = await h.requestResend('{not json');
    t.is(broken.resent, 0);
    t.truthy(broken.error);
  }],
  ['a checkpoint request reaches the handler as sent, each answered as it comes (an abort while a prepare waits), and a failing handler is an answer that refuses', async (h, t) => {
    await h.transport.ensureStream();
    let releasePrepare: () => void = () => {};
    await h.transport.serveCheckpoints(async (text) => {
      const req = JSON.parse(text) as { op: string };
      if (req.op === 'prepare') {
        await new Promise<void>((res) => (releasePrepare = res));
        return { ok: true, j: 'app', e: 1, s: 5 };
      }
      if (req.op === 'abort') {
        releasePrepare();
        return { ok: true, j: 'app', e: 1, s: 4 };
      }
      throw new Error('not now');
    });
    const prepare = h.requestCheckpoint(JSON.stringify({ op: 'prepare' }));
    // Give the prepare time to reach the handler before the abort that releases it.
    await new Promise((res) => setTimeout(res, 50));
    t.deepEqual(await h.requestCheckpoint(JSON.stringify({ op: 'abort' })), { ok: true, j: 'app', e: 1, s: 4 });
    t.deepEqual(await prepare, { ok: true, j: 'app', e: 1, s: 5 });
    t.deepEqual(await h.requestCheckpoint(JSON.stringify({ op: 'commit' })), { ok: false, why: 'not now' });
  }],
  ['a connection that moves to another server is reported, and publishes go on after it', async (h, t) => {
    await h.transport.ensureStream();
    let told = 0;
    const moved = new Promise<void>((resolve) => h.transport.onReconnect(() => {
      told++;
      resolve();
    }));
    await h.reconnect();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([moved, new Promise((resolve) => (timer = setTimeout(resolve, 30_000)))]);
    clearTimeout(timer);
    t.is(told, 1);
    t.false((await h.transport.publish(msg('app.1.1', 'one'))).duplicate);
  }],
];

for (const [impl, make] of IMPLEMENTATIONS) {
  for (const [title, run] of CASES) {
    test.serial(`${impl}: ${title}`, async (t) => {
      const h = await make();
      try {
        await run(h, t);
      } finally {
        await h.close();
      }
    });
  }
}

test.after.always(async () => {
  await server?.[Symbol.asyncDispose]();
});
