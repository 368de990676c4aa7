/**
 * Standbys as replication slots, carried out: each following standby, every few seconds, reads
 * every standby's committed record, marks lost those past their limits, purges from the stream
 * what every standby that counts has committed, and tells each agent how far its spool may be
 * trimmed. Several standbys doing it at once agree: each purge only ever moves up to what all
 * of them committed, and a purge below the stream's first message does nothing.
 */
import type { JetStreamManager, StoredMsg } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { stateKeys } from '../../lib/nats';
import { parseStateKey, readState, stateKey, writeState, type LostRecord, type StandbyRecord, type TrimRecord } from '../../lib/state-bucket';
import { allJournalsSubject, journalPrefix, journalSubject, stateBucket } from '../../lib/subjects';
import { DEFAULTS } from '../../lib/settings';
import { pastLimit, plan, type Plan, type SlotView, type StreamView } from './plan';

/** What one round saw and did (tests, status). */
export interface RoundReport {
  stream: StreamView;
  slots: SlotView[];
  plan: Plan;
  /** Journals purged this round, and below which stream sequence. */
  purged: Map<string, number>;
}

/** The parts a round needs. */
export interface SlotsParts {
  /** This standby's key: who marks and trims. */
  key: string;
  stream: string;
  kv: KV;
  jsm: JetStreamManager;
  log: (line: string) => void;
}

/** Reads the stream's extent and every standby's record: the inputs of a plan (`keys`: the bucket's, when the caller listed them already). */
export async function readSlots(jsm: JetStreamManager, kv: KV, stream: string, now = Date.now(), keys?: string[]): Promise<{ stream: StreamView; slots: SlotView[] }> {
  const info = await jsm.streams.info(stream, { subjects_filter: allJournalsSubject(stream) });
  const prefix = journalPrefix(stream).length + 1;
  const view: StreamView = {
    firstSeq: info.state.first_seq, lastSeq: info.state.last_seq, bytes: info.state.bytes, maxBytes: info.config.max_bytes,
    journals: Object.keys(info.state.subjects ?? {}).map((s) => s.slice(prefix)).sort(), created: info.created,
  };
  const records: { key: string; record: StandbyRecord }[] = [];
  const lost = new Set<string>();
  for (const k of keys ?? (await stateKeys(jsm, stream))) {
    const key = parseStateKey(k);
    if (key?.kind === 'standby') {
      const record = await readState(kv, 'standby', key.name);
      if (record !== undefined) records.push({ key: key.name, record });
    } else if (key?.kind === 'lost' && (await readState(kv, 'lost', key.name)) !== undefined) lost.add(key.name);
  }
  const slots: SlotView[] = [];
  for (const { key, record } of records) {
    const oldest = lost.has(key) ? undefined : await oldestUnapplied(jsm, stream, record, view);
    slots.push({ key, record, lost: lost.has(key), ...(oldest === undefined ? {} : { oldestUnappliedMs: Math.max(0, now - oldest) }) });
  }
  return { stream: view, slots };
}

/** When the first entry a standby has not applied was stored (ms), if there is one. */
async function oldestUnapplied(jsm: JetStreamManager, stream: string, r: StandbyRecord, s: StreamView): Promise<number | undefined> {
  if (r.streamSeq >= s.lastSeq) return undefined;
  const subject = r.journal === undefined ? allJournalsSubject(stream) : journalSubject(stream, r.journal);
  // next_by_subj: the first message at or after seq on the subject (nats-server 2.9's MSG.GET), past any purged hole.
  const query = { seq: Math.max(r.streamSeq + 1, s.firstSeq), next_by_subj: subject } as unknown as { seq: number };
  const m: StoredMsg | null = await jsm.streams.getMessage(stream, query).catch(() => null);
  return m === null ? undefined : m.time.getTime();
}

/** Leaves `record` unless the standby is marked lost already (by another standby, or by itself): true when this one did. */
export async function markLost(kv: KV, record: LostRecord): Promise<boolean> {
  try {
    await kv.create(stateKey('lost', record.standby), JSON.stringify(record));
    return true;
  } catch {
    return false;
  }
}

/** The slots of a stream, kept by one standby. */
export class Slots {
  private running = false;
  /** Below which stream sequence each journal was last purged, so a round purges only when it moved. */
  private readonly purged = new Map<string, number>();
  /** What was last said in each journal's trim record. */
  private readonly trims = new Map<string, string>();
  /** Since when each standby has been past its limit, at every round since. */
  private readonly pastSince = new Map<string, number>();
  /** A trim record the server refused, said once until one is written. */
  private trimRefused: string | undefined;
  /** A purge the server refused, said once until one succeeds. */
  private purgeRefused: string | undefined;

  constructor(private readonly o: SlotsParts) {}

  /** One round (none while another runs): judge, purge, trim. Undefined when skipped. */
  async round(): Promise<RoundReport | undefined> {
    if (this.running) return undefined;
    this.running = true;
    try {
      const { stream, slots } = await readSlots(this.o.jsm, this.o.kv, this.o.stream);
      const now = Date.now();
      const past = new Set(slots.filter((v) => !v.lost && pastLimit(v, stream) !== undefined).map((v) => v.key));
      for (const k of this.pastSince.keys()) if (!past.has(k)) this.pastSince.delete(k);
      for (const k of past) if (!this.pastSince.has(k)) this.pastSince.set(k, now);
      // Lost only once past it for a while: a standby that keeps up, but whose commit trails a burst, is not.
      const due = (key: string): boolean => now - (this.pastSince.get(key) ?? now) >= DEFAULTS.slots.lostAfterMs;
      // Moved on past only once its lost mark is in the bucket: never past a standby that would not be told.
      const marked = new Set<string>();
      for (const l of plan(slots, stream, due).lose) {
        if (await this.markLost(l.key, l.reason, slots.find((v) => v.key === l.key)?.record.streamSeq ?? 0)) marked.add(l.key);
      }
      const p = plan(slots, stream, (key) => due(key) && marked.has(key));
      const purged = await this.purge(p.purgeBelow, stream);
      await this.publishTrims(p.spool);
      return { stream, slots, plan: p, purged };
    } finally {
      this.running = false;
    }
  }

  /** Marks a standby lost (the first standby to do it wins; the record says who and why); true once it is marked, by anyone. */
  private async markLost(key: string, reason: string, streamSeq: number): Promise<boolean> {
    if (!(await markLost(this.o.kv, { standby: key, since: Date.now(), reason, by: this.o.key, streamSeq }))) {
      return (await readState(this.o.kv, 'lost', key).catch(() => undefined)) !== undefined;
    }
    this.o.log(`standby ${key} is LOST: ${reason}. The stream and the agents' spools no longer keep what it lacks; it says so until it is whole again (when it runs, it asks the primary for a baseline and a verify)`);
    return true;
  }

  /**
   * Purges what every standby that counts committed: one purge of the whole stream when every
   * journal may go to the same place, else one per journal.
   */
  private async purge(below: Map<string, number>, s: StreamView): Promise<Map<string, number>> {
    const done = new Map<string, number>();
    const moved = [...below].filter(([j, seq]) => seq > s.firstSeq && seq > (this.purged.get(j) ?? 0));
    if (moved.length === 0) return done;
    const same = new Set(below.values()).size === 1 && below.size === s.journals.length;
    const purges = same ? [{ journals: [...below.keys()], seq: moved[0][1] }] : moved.map(([j, seq]) => ({ journals: [j], seq }));
    for (const p of purges) {
      try {
        await this.o.jsm.streams.purge(this.o.stream, same ? { seq: p.seq } : { seq: p.seq, filter: journalSubject(this.o.stream, p.journals[0]) });
      } catch (err) {
        const why = (err as Error).message;
        if (this.purgeRefused !== why) this.o.log(`cannot trim stream ${this.o.stream} below what every standby committed (${why}): it keeps everything and fills up; allow this standby $JS.API.STREAM.PURGE.${this.o.stream} (SECURITY.md), or another standby that has it trims it`);
        this.purgeRefused = why;
        return done;
      }
      if (this.purgeRefused !== undefined) this.o.log(`stream ${this.o.stream} is trimmed again below what every standby committed`);
      this.purgeRefused = undefined;
      for (const j of p.journals) {
        this.purged.set(j, p.seq);
        done.set(j, p.seq);
      }
    }
    return done;
  }

  /** Tells each journal's agent how far its spool may go (only when that moved: agents watch the record). */
  private async publishTrims(spool: Map<string, { e: number; s: number }>): Promise<void> {
    for (const [j, pos] of spool) {
      if (pos.s === 0) continue;
      // Said again whenever it moves, backwards too: a standby that registered below it holds the spools there from now on.
      const said = `${pos.e}.${pos.s}`;
      if (this.trims.get(j) === said) continue;
      const record: TrimRecord = { e: pos.e, s: pos.s, by: this.o.key, time: Date.now() };
      try {
        await writeState(this.o.kv, 'trim', j, record);
        this.trims.set(j, said);
        this.trimRefused = undefined;
      } catch (err) {
        // Agents trim their spools at these records (at what one standby applied only while there are none).
        const why = (err as Error).message;
        if (this.trimRefused !== why) this.o.log(`cannot tell the agents how far their spools may be trimmed (${why}): they go by what other standbys wrote there, or, while none did, by what one standby applied, which a slower one may still need; allow this standby $KV.${stateBucket(this.o.stream)}.trim.> (SECURITY.md)`);
        this.trimRefused = why;
      }
    }
  }
}
