import { comparePosition, positionLabel, type CheckpointOp, type EntryHeader } from '../../lib/entry';
import { ApplyError } from '../../lib/errors';
import type { CheckpointMark } from '../checkpoints/keeper';
import type { Applied } from './sequencer';

/** What the barriers need of an entry: its header and its size. */
export interface Barriered {
  readonly h: EntryHeader;
  readonly data: { readonly length: number };
}

/** What to apply now, in this order: one entry (its position recorded after it), or a whole transaction (recorded once, after its last entry). */
export type Step<T> =
  | { kind: 'apply'; entry: T }
  | { kind: 'group'; journal: string; ids: string[]; entries: T[] };

/** What the barriers tell the replayer, besides what to apply. */
export type BarrierEvent =
  /** Some journals of `mark` are at their cut; `waitingFor` are not yet. */
  | { kind: 'pending'; mark: CheckpointMark; waitingFor: string[] }
  /** Every journal of `mark` is at its cut: commit, tell the keeper, then `resolve(mark.id)`. */
  | { kind: 'complete'; mark: CheckpointMark }
  /** `single`: failed because this replayer applies one journal (--name), which is said once, not for each. */
  | { kind: 'failed'; mark: CheckpointMark; why: string; single?: true }
  /** These journals are no longer held at a checkpoint: forget their hold in the positions. */
  | { kind: 'released'; journals: string[] }
  /**
   * The process that had transactions `ids` of `journal` open ended (a later epoch of the journal
   * came, at `at`): they can never end, and their changes are on the primary's disk, which the
   * journal goes on from; `entries` were applied as they are.
   */
  | { kind: 'cut-short'; journal: string; ids: string[]; entries: number; at: string }
  /** At a promotion's end of stream: transactions `open` never ended; `applied` staged entries of none of them (other transactions that ended, calls outside) were applied, `aside` are set aside. */
  | { kind: 'never-ended'; journal: string; open: string[]; applied: number; aside: number };

/** A transaction being staged in one journal, as status shows it. */
export interface StagedTransaction {
  journal: string;
  /** The transactions open (the first begun first), and any nested one already ended. */
  ids: string[];
  /** When the first began on the primary (its begin entry's time), ms. */
  since: number;
  entries: number;
  bytes: number;
}

export interface BarrierLimits {
  /** What may wait behind a checkpoint: entries per journal, bytes in all (the sequencer's maxHeld). */
  maxHeld: { entries: number; bytes: number };
  /** What one journal may stage for its open transactions (DEFAULTS.replay.maxStaged). */
  maxStaged: { entries: number; bytes: number };
  /** How long after the first journal of a checkpoint arrived the others may take (DEFAULTS.replay.checkpointWaitMs). */
  waitMs: number;
  /** The one journal this replayer applies (--name): a checkpoint of several can never be reached by it. */
  only?: string;
  /** A promotion: at the end of the stream a transaction still open never ends. */
  promoting?: boolean;
}

interface Pending {
  mark: CheckpointMark;
  /** Journals whose checkpoint entry of this mark was applied: held there. */
  arrived: Set<string>;
  firstAt: number;
  complete: boolean;
}

interface Lane<T> {
  /** The id of the checkpoint this journal is held at, once its checkpoint entry was applied. */
  held?: string;
  /** Entries of this journal after its hold, in order. */
  queue: T[];
  /** Staged from the first begin; `epoch` is the process's that began it. */
  tx?: { open: string[]; ids: string[]; since: number; epoch: number; entries: T[]; bytes: number };
}

/** Failed or reached checkpoint ids remembered, so that a late journal's entry of one passes at once. */
const RESOLVED_KEPT = 1000;

/**
 * The standby's order for checkpoints and transactions, with no I/O. It sits after the
 * Sequencer (which hands it each journal's next entry) and before the appliers:
 *
 * - a checkpoint entry of journal J is applied (J's position moves to it; it changes no object),
 *   then J is held: its later entries wait here until every journal of the checkpoint's cut was
 *   applied through its own checkpoint entry, and no further (`complete`; the replayer commits,
 *   tells the keeper, then calls `resolve`), or until the checkpoint fails (a journal passed its
 *   cut with another entry, one did not come within `waitMs`, too much waits): then at once;
 * - from a transaction's begin, J's entries are staged until every transaction open in J ended,
 *   then handed over as one group, to be applied and recorded together.
 *
 * `taken(j)` is the last entry of each journal it was given: the sequencer orders against it,
 * so an entry held here is neither applied twice nor mistaken for a gap.
 */
export class Barriers<T extends Barriered> {
  private readonly lanes = new Map<string, Lane<T>>();
  private readonly marks = new Map<string, Pending>();
  private readonly resolved = new Set<string>();
  private readonly last = new Map<string, Applied>();
  private queuedBytes = 0;
  private events: BarrierEvent[] = [];

  constructor(private readonly limits: BarrierLimits, private readonly position: (journal: string) => Applied | undefined) {}

  /** The last entry of `journal` handed here (applied, held or staged), if any in this run. */
  taken(journal: string): Applied | undefined {
    return this.last.get(journal);
  }

  /** Whether entries wait here: the stream position recorded must then stay before them. */
  get holding(): boolean {
    for (const l of this.lanes.values()) if (l.queue.length > 0 || l.tx !== undefined) return true;
    return false;
  }

  /** The checkpoint `journal` is held at, if it is. */
  holdOf(journal: string): CheckpointMark | undefined {
    const id = this.lanes.get(journal)?.held;
    return id === undefined ? undefined : this.marks.get(id)?.mark;
  }

  /** Takes the next entry of its journal; returns what to apply now. Throws ApplyError when a transaction outgrows maxStaged. */
  take(e: T, now: number): Step<T>[] {
    this.last.set(e.h.j, { e: e.h.e, s: e.h.s });
    const out: Step<T>[] = [];
    this.route(e, now, out);
    return out;
  }

  /** Fails every checkpoint whose journals did not all arrive within `waitMs` of the first; returns what that releases. */
  expire(now: number): Step<T>[] {
    const out: Step<T>[] = [];
    for (const p of [...this.marks.values()]) {
      if (p.complete || now - p.firstAt <= this.limits.waitMs) continue;
      const first = [...p.arrived][0];
      this.fail(p, `${describe(this.waiting(p))} did not reach ${this.waiting(p).length === 1 ? 'its' : 'their'} checkpoint entry within ${this.limits.waitMs / 1000} s of journal ${first}'s`, now, out);
    }
    return out;
  }

  /**
   * The stream ended (a drain, a promotion): a checkpoint still waiting can never be reached from
   * it. At a promotion a transaction still open never ends either: what is staged behind it that
   * belongs to none of the open ones (a transaction begun and ended meanwhile, calls outside any)
   * is applied in order; the open ones' entries stay for `unfinished`, to be set aside.
   */
  endOfStream(now: number): Step<T>[] {
    const out: Step<T>[] = [];
    for (const p of [...this.marks.values()]) {
      if (!p.complete) this.fail(p, `the stream ended before ${describe(this.waiting(p))} reached ${this.waiting(p).length === 1 ? 'its' : 'their'} checkpoint entry`, now, out);
    }
    if (this.limits.promoting === true) {
      for (const [journal, lane] of this.lanes) {
        const tx = lane.tx;
        if (tx === undefined) continue;
        const open = new Set(tx.open);
        const ofOpen = (e: T): boolean => (e.h.x !== undefined && open.has(e.h.x)) || (e.h.op === 'tx' && open.has(e.h.id));
        const keep = tx.entries.filter((e) => !ofOpen(e));
        const aside = tx.entries.filter(ofOpen);
        if (keep.length > 0) out.push({ kind: 'group', journal, ids: tx.ids.filter((id) => !open.has(id)), entries: keep });
        lane.tx = { ...tx, ids: [...tx.open], entries: aside, bytes: aside.reduce((n, e) => n + e.data.length, 0) };
        this.events.push({ kind: 'never-ended', journal, open: [...tx.open], applied: keep.length, aside: aside.length });
      }
    }
    return out;
  }

  /** After `complete` was committed and the keeper told: releases the journals held at `id`. */
  resolve(id: string, now: number): Step<T>[] {
    const out: Step<T>[] = [];
    const p = this.marks.get(id);
    if (p !== undefined) this.release(p, now, out);
    return out;
  }

  /** A hold found again in the positions after a restart: `journal` was applied through its checkpoint entry of `mark`. */
  restore(journal: string, mark: CheckpointMark, now: number): void {
    let p = this.marks.get(mark.id);
    if (p === undefined) this.marks.set(mark.id, (p = { mark, arrived: new Set(), firstAt: now, complete: false }));
    p.arrived.add(journal);
    this.lane(journal).held = mark.id;
    this.settle(p);
  }

  /** What the replayer must say or do since the last call. */
  drainEvents(): BarrierEvent[] {
    const e = this.events;
    this.events = [];
    return e;
  }

  /** Transactions being staged, for status. */
  staging(): StagedTransaction[] {
    const rows: StagedTransaction[] = [];
    for (const [journal, l] of this.lanes) {
      if (l.tx !== undefined) rows.push({ journal, ids: [...l.tx.ids], since: l.tx.since, entries: l.tx.entries.length, bytes: l.tx.bytes });
    }
    return rows;
  }

  /** Every staged transaction's entries (a promotion sets them aside). */
  unfinished(): { journal: string; ids: string[]; entries: T[] }[] {
    return [...this.lanes].flatMap(([journal, l]) => (l.tx === undefined ? [] : [{ journal, ids: [...l.tx.ids], entries: [...l.tx.entries] }]));
  }

  /** Checkpoints waiting for journals (status, tests). */
  pending(): { mark: CheckpointMark; waitingFor: string[] }[] {
    return [...this.marks.values()].filter((p) => !p.complete).map((p) => ({ mark: p.mark, waitingFor: this.waiting(p) }));
  }

  /** Forgets everything (the replayer reads again from its last good commit; holds are restored from it). */
  clear(): void {
    this.lanes.clear();
    this.marks.clear();
    this.last.clear();
    this.queuedBytes = 0;
    this.events = [];
  }

  private lane(journal: string): Lane<T> {
    let l = this.lanes.get(journal);
    if (l === undefined) this.lanes.set(journal, (l = { queue: [] }));
    return l;
  }

  private route(e: T, now: number, out: Step<T>[]): void {
    const { h } = e;
    const lane = this.lane(h.j);
    this.checkPassing(e, now, out);
    // A later epoch is a new process of the journal, on the same disk: what the last one left open never ends.
    if (lane.tx !== undefined && h.e !== lane.tx.epoch) {
      const tx = lane.tx;
      lane.tx = undefined;
      out.push({ kind: 'group', journal: h.j, ids: tx.ids, entries: tx.entries });
      this.events.push({ kind: 'cut-short', journal: h.j, ids: [...tx.open], entries: tx.entries.length, at: at(h) });
    }
    if (lane.held !== undefined) return this.enqueue(lane, e, now, out);
    if (lane.tx !== undefined) return this.stage(lane, e, now, out);
    if (h.op === 'tx' && h.ev === 'begin') {
      lane.tx = { open: [], ids: [], since: h.t, epoch: h.e, entries: [], bytes: 0 };
      return this.stage(lane, e, now, out);
    }
    out.push({ kind: 'apply', entry: e });
    if (h.op === 'checkpoint') this.arrive(h, now, out);
  }

  /** A journal of a waiting cut that reaches or passes its cut position with anything but that checkpoint's entry fails it. */
  private checkPassing(e: T, now: number, out: Step<T>[]): void {
    const { h } = e;
    for (const p of [...this.marks.values()]) {
      if (p.complete || p.arrived.has(h.j)) continue;
      const c = p.mark.cut.find((x) => x.j === h.j);
      if (c === undefined || comparePosition(h, c) < 0) continue;
      if (h.op === 'checkpoint' && h.id === p.mark.id && comparePosition(h, c) === 0) continue;
      this.fail(p, `journal ${h.j} passed its cut ${positionLabel(c)} with ${at(h)} (${h.op}), not this checkpoint's entry`, now, out);
    }
  }

  /** Journal `h.j`'s checkpoint entry was just handed over to be applied: hold the journal there, or fail the checkpoint. */
  private arrive(h: EntryHeader & CheckpointOp, now: number, out: Step<T>[]): void {
    if (this.resolved.has(h.id)) return;
    const only = this.limits.only;
    if (only !== undefined && h.cut.some((c) => c.j !== only)) {
      return this.failNew(h, `this replayer applies journal ${only} only (--name): a checkpoint of ${h.cut.length} journals cannot be reached by it`, 0, [], true);
    }
    let p = this.marks.get(h.id);
    if (p === undefined) {
      const mark: CheckpointMark = { name: h.name, id: h.id, time: h.t, cut: h.cut };
      p = { mark, arrived: new Set(), firstAt: now, complete: false };
      this.marks.set(h.id, p);
      for (const c of h.cut) {
        if (c.j === h.j) continue;
        const at = this.positionOf(c.j);
        if (at !== undefined && comparePosition(at, c) >= 0) {
          return this.fail(p, `journal ${c.j} was already at ${positionLabel(at)}, at or past its cut ${positionLabel(c)} without this checkpoint's entry, when journal ${h.j}'s arrived`, now, out);
        }
      }
    }
    const mine = p.mark.cut.find((c) => c.j === h.j);
    if (mine === undefined || comparePosition(mine, h) !== 0) {
      return this.fail(p, `journal ${h.j}'s checkpoint entry is at ${at(h)}, not where its cut says (${mine === undefined ? 'not in it' : positionLabel(mine)})`, now, out);
    }
    p.arrived.add(h.j);
    this.lane(h.j).held = h.id;
    this.settle(p);
  }

  private settle(p: Pending): void {
    const waitingFor = this.waiting(p);
    if (waitingFor.length > 0) {
      this.events.push({ kind: 'pending', mark: p.mark, waitingFor });
      return;
    }
    p.complete = true;
    this.events.push({ kind: 'complete', mark: p.mark });
  }

  private waiting(p: Pending): string[] {
    return p.mark.cut.map((c) => c.j).filter((j) => !p.arrived.has(j));
  }

  private positionOf(journal: string): Applied | undefined {
    const a = this.last.get(journal);
    const b = this.position(journal);
    if (a === undefined) return b;
    return b === undefined || comparePosition(a, b) >= 0 ? a : b;
  }

  private enqueue(lane: Lane<T>, e: T, now: number, out: Step<T>[]): void {
    lane.queue.push(e);
    this.queuedBytes += e.data.length;
    const p = this.marks.get(lane.held!);
    if (p === undefined || p.complete) return; // released at once after its commit
    const { entries, bytes } = this.limits.maxHeld;
    if (lane.queue.length > entries || this.queuedBytes > bytes) {
      this.fail(p, `what waits behind it (${lane.queue.length} entries of journal ${e.h.j}, ${this.queuedBytes} bytes in all) exceeds the replayer's bounds (${entries} entries of a journal, ${bytes} bytes)`, now, out);
    }
  }

  private stage(lane: Lane<T>, e: T, now: number, out: Step<T>[]): void {
    const tx = lane.tx!;
    const { h } = e;
    const { entries, bytes } = this.limits.maxStaged;
    if (tx.entries.length + 1 > entries || tx.bytes + e.data.length > bytes) {
      throw new ApplyError(`journal ${h.j}: transaction ${tx.ids.join(', ')} (begun ${new Date(tx.since).toISOString()}) is larger than this standby stages whole (${entries} entries or ${bytes} bytes, DEFAULTS.replay.maxStaged) at ${at(h)}; none of it is applied; stopping`);
    }
    tx.entries.push(e);
    tx.bytes += e.data.length;
    if (h.op === 'checkpoint') {
      // An agent does not prepare a checkpoint with a transaction open: this one cannot be a consistent cut.
      this.failNew(h, `journal ${h.j}'s checkpoint entry ${at(h)} arrived inside its transaction ${tx.open.join(', ')}`, now, out);
    }
    if (h.op !== 'tx') return;
    if (h.ev === 'begin') {
      tx.open.push(h.id);
      tx.ids.push(h.id);
      return;
    }
    const i = tx.open.indexOf(h.id);
    if (i >= 0) tx.open.splice(i, 1);
    if (tx.open.length > 0) return;
    lane.tx = undefined;
    out.push({ kind: 'group', journal: h.j, ids: tx.ids, entries: tx.entries });
  }

  /** Fails the checkpoint of entry `h`, known here or not. */
  private failNew(h: EntryHeader & CheckpointOp, why: string, now = 0, out: Step<T>[] = [], single?: true): void {
    const p = this.marks.get(h.id) ?? { mark: { name: h.name, id: h.id, time: h.t, cut: h.cut }, arrived: new Set<string>(), firstAt: now, complete: false };
    this.fail(p, why, now, out, single);
  }

  private fail(p: Pending, why: string, now: number, out: Step<T>[], single?: true): void {
    if (this.resolved.has(p.mark.id)) return;
    this.events.push({ kind: 'failed', mark: p.mark, why, ...(single === undefined ? {} : { single }) });
    this.release(p, now, out);
  }

  /** Forgets `p` and hands over what its journals held, each through the order again (a later checkpoint or transaction in it). */
  private release(p: Pending, now: number, out: Step<T>[]): void {
    this.marks.delete(p.mark.id);
    this.resolved.add(p.mark.id);
    if (this.resolved.size > RESOLVED_KEPT) this.resolved.delete(this.resolved.values().next().value!);
    const freed: string[] = [];
    for (const j of p.arrived) {
      const lane = this.lanes.get(j);
      if (lane?.held !== p.mark.id) continue;
      lane.held = undefined;
      freed.push(j);
    }
    if (freed.length > 0) this.events.push({ kind: 'released', journals: freed });
    for (const j of freed) {
      const lane = this.lane(j);
      const queue = lane.queue;
      lane.queue = [];
      for (const e of queue) {
        this.queuedBytes -= e.data.length;
        this.route(e, now, out);
      }
    }
  }
}

/** An entry's place in its own journal, `epoch.seq`. */
function at(h: { e: number; s: number }): string {
  return positionLabel({ e: h.e, s: h.s });
}

function describe(journals: string[]): string {
  return `journal${journals.length === 1 ? '' : 's'} ${journals.join(', ')}`;
}
