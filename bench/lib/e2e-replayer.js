'use strict';
/**
 * The standby side of the end-to-end bench: a Replayer (the same class the
 * `understudy replay` CLI runs) in its own process, driven over IPC.
 *   node e2e-replayer.js '{"url":…,"standby":…,"state":…,"name":…,"drain":false}'
 *
 * For every applied entry it notes (journal seq, primary time t, the moment
 * the apply returned, the moment the commit that covers it finished). Those
 * come from wrapping the replayer's applier and commit from outside; when the
 * replayer's internals do not have that shape (it is being changed), the
 * per-entry figures are absent and the parent falls back to the KV position.
 *
 * Messages in:  {type:'waitFor', seq}  → {type:'reached', seq, at} once applied
 *               {type:'progress'}      → {type:'progress', applied, lastAt} (entries applied so far)
 *               {type:'stop'}          → stops the run, then {type:'result', …}
 * In drain mode the run ends by itself and {type:'result'} is sent.
 */
const path = require('node:path');

const DIST = path.join(__dirname, '..', '..', 'dist');
const { Replayer } = require(path.join(DIST, 'replayer', 'replayer.js'));
const { parseRoots } = require(path.join(DIST, 'lib', 'roots.js'));

const opts = JSON.parse(process.argv[2]);
const now = () => performance.timeOrigin + performance.now();

/**
 * What nats.js says about the replayer's consumer (its status() notifications): heartbeats missed,
 * 409s such as "Message Size Exceeds MaxBytes", resets. Counted by kind; the first few kept with
 * their time. Read from outside by wrapping nats.js's consume(); absent when that shape changes.
 */
const consumerEvents = { counts: {}, first: [] };

/**
 * JetStream's stored time of each stream message (ms since epoch), by stream sequence, read from
 * nats.js's messages as the replayer's source iterates them; taken (and forgotten) at the apply.
 * The replayer's own SourceMessage does not carry it: only the bench wants it.
 */
const storedBySeq = new Map();
function keepStoredTimes(messages) {
  const iterate = messages?.[Symbol.asyncIterator];
  if (typeof iterate !== 'function') return;
  messages[Symbol.asyncIterator] = async function* () {
    for await (const m of { [Symbol.asyncIterator]: () => iterate.call(messages) }) {
      const ns = m?.info?.timestampNanos;
      if (typeof ns === 'number') storedBySeq.set(m.seq, ns / 1e6);
      yield m;
    }
  };
}
{
  let cmod;
  try {
    cmod = require(path.join(__dirname, '..', '..', 'node_modules', '@nats-io', 'jetstream', 'lib', 'consumer.js'));
  } catch {
    cmod = undefined;
  }
  const proto = cmod?.PullConsumerImpl?.prototype;
  if (proto && typeof proto.consume === 'function') {
    const consume = proto.consume;
    proto.consume = function (...args) {
      return consume.apply(this, args).then((messages) => {
        keepStoredTimes(messages);
        if (typeof messages?.status === 'function') {
          (async () => {
            for await (const ev of messages.status()) {
              if (ev.type === 'next') continue; // each pull request; not news
              const key = ev.description ? `${ev.type} (${ev.code} ${ev.description})` : ev.type;
              consumerEvents.counts[key] = (consumerEvents.counts[key] ?? 0) + 1;
              if (consumerEvents.first.length < 20) consumerEvents.first.push({ at: now(), key });
            }
          })().catch(() => undefined);
        }
        return messages;
      });
    };
  }
}

if (process.env.BENCH_REPLAY_CONSUME) {
  // Experiment (BENCH_REPLAY_CONSUME='{"max_messages":48}' or '{"max_bytes":16777216}'): the options
  // the replayer passes to consume() are replaced by these (nats.js takes max_messages or max_bytes,
  // not both). 53a948d–0e16fe4 asked for 512 messages, which with 900 KiB batches can pass
  // nats-server's 64 MiB per-client pending limit (slow consumer); 99a9deb–c6d03c4 for 8 MiB, which
  // the server refuses (409) when fewer bytes are left than the next message; 73ce9f2 for 32 messages.
  const cmod = require(path.join(__dirname, '..', '..', 'node_modules', '@nats-io', 'jetstream', 'lib', 'consumer.js'));
  const consume = cmod.PullConsumerImpl.prototype.consume;
  const replace = JSON.parse(process.env.BENCH_REPLAY_CONSUME);
  cmod.PullConsumerImpl.prototype.consume = function (o = {}) {
    const { max_messages: _m, max_bytes: _b, ...rest } = o;
    return consume.call(this, { ...rest, ...replace });
  };
}
const rec = { s: [], t: [], applied: [], durable: [], applyMs: [], stored: [] };
let streamAt; // JetStream's timestamp of the message being handled (ms since epoch)
/**
 * Time in the sync steps of commits: applier.sync (the fsyncs of files and directories; async since
 * group commit, timed until its Promise settles) and store.sync; files/dirs it was handed.
 */
const syncMs = { applier: 0, store: 0, calls: 0, max: 0, files: 0, dirs: 0, async: false };
/** Each commit's fsyncs: when applier.sync began and how long it and the store.sync after it took (ms). */
const fsyncs = { at: [], applierMs: [], storeMs: [] };
let lastSeq = 0;
let durableUpTo = 0; // entries in rec with a durable time
const waiters = [];
let instrumented = false;
let commits = 0;
let commitMsTotal = 0;
let inCommit = false;
const msgs = { n: 0, pending0: 0 };
let appliesDuringCommit = 0; // the replayer promises none (group commit); counted as a check
const commitAt = []; // end of each commit that made entries durable

const replayer = new Replayer({
  nats: { url: opts.url },
  stream: 'UNDERSTUDY',
  roots: parseRoots(`data=${opts.standby}`),
  name: opts.name,
  stateDir: opts.state,
  drain: opts.drain === true,
  log: (line) => process.stderr.write(`replayer: ${line}\n`),
});

// The replayer's parts exist once it is opened: the appliers (their registry), the commit, the intake.
replayer.open();
const applier = replayer.appliers;
const committer = replayer.committer;
if (applier !== undefined && typeof applier.apply === 'function' && typeof committer?.commit === 'function') {
  instrumented = true;
  const apply = applier.apply.bind(applier);
  applier.apply = (h, data) => {
    if (inCommit) appliesDuringCommit++;
    const a0 = now();
    const outcome = apply(h, data);
    rec.applyMs.push(now() - a0);
    rec.s.push(h.s);
    rec.t.push(h.t);
    rec.stored.push(streamAt);
    rec.applied.push(now());
    if (h.s > lastSeq) lastSeq = h.s;
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (lastSeq >= waiters[i]) {
        process.send({ type: 'reached', seq: waiters[i], at: now() });
        waiters.splice(i, 1);
      }
    }
    return outcome;
  };
  // applier.sync() is async since group commit (a Promise; the fsyncs run in parallel on the thread
  // pool): its time is until the Promise settles. store.sync() is synchronous. Either shape is timed.
  const timeSync = (obj, key) => {
    if (obj === undefined || typeof obj.sync !== 'function') return;
    const orig = obj.sync.bind(obj);
    const done = (s0) => {
      const took = now() - s0;
      syncMs[key] += took;
      if (key === 'applier') {
        fsyncs.at.push(s0);
        fsyncs.applierMs.push(took);
      } else if (fsyncs.storeMs.length < fsyncs.applierMs.length) {
        fsyncs.storeMs.push(took);
      }
      if (key === 'applier') syncMs.calls++;
      if (took > syncMs.max) syncMs.max = took;
    };
    obj.sync = (...args) => {
      if (key === 'applier') {
        // What the group commit is about to fsync (private fields; absent → not counted).
        const fsApplier = Array.isArray(obj.all) ? obj.all.find((a) => a.name === 'fs') : obj;
        if (typeof fsApplier?.dirty?.size === 'number') syncMs.files += fsApplier.dirty.size;
        if (typeof fsApplier?.touched?.size === 'number') syncMs.dirs += fsApplier.touched.size;
      }
      const s0 = now();
      let r;
      try {
        r = orig(...args);
      } catch (err) {
        done(s0);
        throw err;
      }
      if (r !== null && typeof r === 'object' && typeof r.then === 'function') {
        syncMs.async = true;
        return r.finally(() => done(s0));
      }
      done(s0);
      return r;
    };
  };
  // Stream messages (one carries up to 512 entries since the shipper batches) and how many said
  // "nothing pending" (m.info.pending === 0), on which the replayer commits at once.
  const intake = replayer.intake;
  if (typeof intake?.take === 'function') {
    const take = intake.take.bind(intake);
    intake.take = (m, ...rest) => {
      msgs.n++;
      if (m?.pending === 0) msgs.pending0++;
      return take(m, ...rest);
    };
  }
  timeSync(applier, 'applier');
  timeSync(replayer.store, 'store');
  // The stream sequence of the message an entry came in, for its stored time (private; absent → no split).
  if (typeof replayer.applyEntry === 'function') {
    const applyEntry = replayer.applyEntry.bind(replayer);
    replayer.applyEntry = (h, data, streamSeq) => {
      streamAt = storedBySeq.get(streamSeq);
      for (const seq of storedBySeq.keys()) {
        if (seq >= streamSeq) break;
        storedBySeq.delete(seq);
      }
      return applyEntry(h, data, streamSeq);
    };
  }
  const commit = committer.commit.bind(committer);
  committer.commit = async (kv) => {
    const upTo = rec.s.length;
    const c0 = now();
    inCommit = true;
    try {
      await commit(kv);
    } finally {
      inCommit = false;
    }
    const at = now();
    if (upTo > durableUpTo) {
      commits++;
      commitMsTotal += at - c0;
      commitAt.push(at);
    }
    for (let i = durableUpTo; i < upTo; i++) rec.durable[i] = at;
    durableUpTo = Math.max(durableUpTo, upTo);
  };
}

const ac = new AbortController();
process.on('message', (m) => {
  if (m.type === 'waitFor') {
    if (!instrumented) return;
    if (lastSeq >= m.seq) process.send({ type: 'reached', seq: m.seq, at: now() });
    else waiters.push(m.seq);
  } else if (m.type === 'progress') {
    process.send({ type: 'progress', applied: rec.s.length, lastAt: rec.applied[rec.applied.length - 1] });
  } else if (m.type === 'stop') {
    ac.abort();
  }
});

const cpu0 = process.cpuUsage();
const started = now();
process.send({ type: 'started', instrumented });
replayer.run(ac.signal).then((summary) => {
  const cpu = process.cpuUsage(cpu0);
  process.send({
    type: 'result', instrumented, summary, started, ended: now(), commits, commitMsTotal, commitAt, syncMs, fsyncs, appliesDuringCommit, msgs, consumerEvents,
    cpuMs: (cpu.user + cpu.system) / 1000, ...rec,
  }, () => process.exit(0));
}, (err) => {
  process.stderr.write(`replayer failed: ${err.stack ?? err}\n`);
  process.exit(1);
});
