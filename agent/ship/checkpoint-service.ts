/**
 * The agent's side of `understudy checkpoint` (lib/checkpoint-protocol), in the shipper worker:
 * it can freeze the application and see the freeze take hold without the application thread's
 * help, through the gate's shared cells (agent/freeze), while that thread may be blocked in a
 * frozen synchronous call.
 *
 * Prepare: hold new transactions back and wait until none is open (a checkpoint never cuts one);
 * drain (asynchronous calls wait, synchronous ones pass, so the calls in flight can be journaled
 * by the event loop); freeze (every call waits) and wait until no call is in flight; answer the
 * position the checkpoint entry will take: last appended + 1. Nothing can be journaled then until
 * the thaw, so that position stays free.
 * Commit: send the entry to the application thread on the control port, then thaw with
 * COMMIT_PENDING, so that whoever passes the gate first writes the entry (agent/checkpoint-entry);
 * answer once it is in JetStream.
 * Whatever happens, the freeze ends `thawAfterMs` after the prepare came (the application thread's
 * gate ends it by itself too, should this worker be gone); a commit after that is refused.
 *
 * Why no causal chain crosses the cut: the command sends the commits only once every agent has
 * answered its prepare, so there is one instant T at which every agent is frozen. Each entry
 * before an agent's checkpoint entry was journaled before its freeze, so its change happened
 * before T; every change after T is journaled after the entry (a call that met the freeze waits,
 * then finds the entry written first; one past the deadline moves the position and the commit is
 * refused). A chain "B's change was caused by A's change" has A's change before B's in real time;
 * if B's is before T, so is A's, and A's entry is before A's cut: a checkpoint holding B's change
 * holds A's (test/checkpoint.test.ts checks it on a cross-process invariant).
 */
import type { MessagePort } from 'node:worker_threads';
import { parseCheckpointRequest, type CheckpointReply, type CommitRequest, type PrepareRequest } from '../../lib/checkpoint-protocol';
import { DEFAULTS } from '../../lib/settings';
import type { JournalTransport } from '../../lib/transport/journal-transport';
import type { CommitAnswer, CommitOrder } from '../checkpoint-entry';
import { COMMIT_PENDING } from '../freeze';
import { ACKED, DEADLINE, FROZEN, HURRY, INFLIGHT, TXHOLD, TXOPEN, gateCells, publishPosition, readPosition } from '../shared-state';
import type { ShippingJournal } from './shipping-journal';

type Phase = 'preparing' | 'prepared' | 'committing' | 'done' | 'thawed';

interface Take {
  id: string;
  name: string;
  deadline: number;
  phase: Phase;
  /** Why it ended without a commit. */
  why?: string;
  gen: number;
  frozenAt?: number;
  e: number;
  s: number;
  timer?: NodeJS.Timeout;
}

/** What of the shipped journal the service reads: its name, epoch, shared cells and last appended seq. */
export type CheckpointJournal = Pick<ShippingJournal, 'name' | 'epoch' | 'shared' | 'appended'>;

/** Answers checkpoint requests for one journal. */
export class CheckpointService {
  private readonly cells: Int32Array;
  private take: Take | undefined;
  private gen = 0;
  private readonly answers = new Map<string, (a: CommitAnswer) => void>();

  constructor(private readonly j: CheckpointJournal, private readonly port: MessagePort | undefined, private readonly pollMs: number = DEFAULTS.checkpoint.pollMs) {
    this.cells = gateCells(j.shared);
    port?.on('message', (m: CommitAnswer) => this.answers.get(m.id)?.(m));
  }

  /** Begins answering requests that come through the transport. */
  serve(transport: JournalTransport): void {
    transport.serveCheckpoints((text) => this.handle(text)).catch(() => undefined);
  }

  /** One request, as text: its answer. */
  async handle(text: string): Promise<CheckpointReply> {
    const req = parseCheckpointRequest(text);
    if (typeof req === 'string') return { ok: false, why: `bad checkpoint request: ${req}` };
    if (req.op === 'prepare') return this.prepare(req);
    if (req.op === 'commit') return this.commit(req);
    const t = this.take;
    if (t !== undefined && t.id === req.id) this.thaw(t, 'aborted by the command');
    return { ok: true, j: this.j.name, e: this.j.epoch, s: this.j.appended() };
  }

  private async prepare(req: PrepareRequest): Promise<CheckpointReply> {
    if (this.port === undefined) return { ok: false, why: 'not an application\'s journal (a command\'s, or one adopted for its backlog): nothing to freeze', notMember: true };
    const busy = this.take;
    if (busy !== undefined && (busy.phase === 'preparing' || busy.phase === 'prepared' || busy.phase === 'committing')) {
      return { ok: false, why: `checkpoint ${busy.name} (${busy.id}) is in progress here` };
    }
    const now = Date.now();
    // The command gave up on it at sentAt + thawAfterMs: this agent was stopped, or the prepare held up, past that.
    const late = now - (req.sentAt + req.thawAfterMs);
    if (late >= 0) return { ok: false, why: `too late: the prepare of ${req.name} (${req.id}) came ${late} ms past its deadline (sent ${new Date(req.sentAt).toISOString()}, thaw after ${req.thawAfterMs} ms); not freezing` };
    // The freeze ends when the command's deadline does, not thawAfterMs after a late arrival (capped, should the clock run behind the command's).
    const deadline = Math.min(req.sentAt, now) + req.thawAfterMs;
    const t: Take = { id: req.id, name: req.name, deadline, phase: 'preparing', gen: 0, e: 0, s: 0 };
    this.take = t;
    publishPosition(this.j.shared, DEADLINE, t.deadline);
    t.timer = setTimeout(() => this.thaw(t, `thawed at its deadline, ${req.thawAfterMs} ms after the prepare was sent, with no commit`), deadline - now);
    // Held first, counted after: a transaction's begin counts itself first and looks at the hold after (agent/transactions).
    Atomics.store(this.cells, TXHOLD, 1);
    for (;;) {
      if (!(await this.until(t, TXOPEN))) return this.notPrepared(t, 'a transaction stayed open until the freeze deadline');
      // An abort (or the deadline) may have come while this waited: the stale prepare and its
      // abort arrive together after a SIGCONT. Freezing now would hold the application until
      // the gate's own deadline, with nothing left to thaw it.
      if (t.phase !== 'preparing') return this.ended(t);
      t.gen = ++this.gen;
      Atomics.store(this.cells, FROZEN, 2 * t.gen);
      t.frozenAt ??= Date.now();
      if (!(await this.until(t, INFLIGHT))) return this.notPrepared(t, 'asynchronous calls in flight were not journaled before the freeze deadline');
      Atomics.store(this.cells, FROZEN, 2 * t.gen + 1);
      if (!(await this.until(t, INFLIGHT))) return this.notPrepared(t, 'calls in flight were not journaled before the freeze deadline');
      if (Atomics.load(this.cells, TXOPEN) === 0) break;
      // A begin slipped in before it saw the hold (it backs off): let it go and look again.
      this.open(t);
    }
    if (t.phase !== 'preparing') return this.ended(t);
    t.e = this.j.epoch;
    t.s = this.j.appended() + 1;
    t.phase = 'prepared';
    return { ok: true, j: this.j.name, e: t.e, s: t.s };
  }

  private async commit(req: CommitRequest): Promise<CheckpointReply> {
    const t = this.take;
    if (t === undefined || t.id !== req.id) return { ok: false, why: 'no checkpoint with that id is prepared here' };
    if (t.phase !== 'prepared') return { ok: false, why: t.why ?? `the checkpoint is ${t.phase} here` };
    if (Date.now() >= t.deadline || Atomics.load(this.cells, FROZEN) !== 2 * t.gen + 1) {
      this.thaw(t, 'thawed at its deadline before the commit came');
      return { ok: false, why: t.why ?? 'thawed' };
    }
    const mine = req.cut.find((c) => c.j === this.j.name);
    if (mine === undefined || mine.e !== t.e || mine.s !== t.s) {
      this.thaw(t, `the cut does not hold this journal at ${t.e}.${t.s}`);
      return { ok: false, why: t.why ?? 'thawed' };
    }
    t.phase = 'committing';
    clearTimeout(t.timer);
    const answered = new Promise<CommitAnswer | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), DEFAULTS.checkpoint.entryWaitMs);
      this.answers.set(t.id, (a) => {
        clearTimeout(timer);
        resolve(a);
      });
    });
    const order: CommitOrder = { kind: 'commit', id: t.id, name: t.name, cut: req.cut, e: t.e, s: t.s };
    // The order is in the port before the gate opens: whoever passes it first finds it there.
    this.port?.postMessage(order);
    Atomics.store(this.cells, FROZEN, COMMIT_PENDING);
    Atomics.notify(this.cells, FROZEN);
    const frozenMs = Date.now() - (t.frozenAt ?? Date.now());
    this.releaseTransactions();
    const answer = await answered;
    this.answers.delete(t.id);
    t.phase = 'done';
    if (answer === undefined) return { ok: false, why: `the application thread did not write the checkpoint entry within ${DEFAULTS.checkpoint.entryWaitMs} ms (busy, or blocked)` };
    if (answer.kind === 'refused') return { ok: false, why: answer.why };
    publishPosition(this.j.shared, HURRY, answer.s);
    if (!(await this.acked(answer.s))) return { ok: false, why: `the checkpoint entry (${t.e}.${t.s}) is journaled but JetStream did not acknowledge it within ${DEFAULTS.checkpoint.entryWaitMs} ms` };
    return { ok: true, j: this.j.name, e: t.e, s: t.s, frozenMs };
  }

  /** Waits until gate cell `cell` is 0; false when the take ended or its deadline came first. */
  private async until(t: Take, cell: number): Promise<boolean> {
    for (;;) {
      const v = Atomics.load(this.cells, cell);
      if (v === 0) return true;
      const left = t.deadline - Date.now();
      if (t.phase !== 'preparing' || left <= 0) return false;
      const w = Atomics.waitAsync(this.cells, cell, v, Math.min(left, this.pollMs));
      if (w.async) await w.value;
    }
  }

  private async acked(seq: number): Promise<boolean> {
    const until = Date.now() + DEFAULTS.checkpoint.entryWaitMs;
    while (readPosition(this.j.shared, ACKED) < seq) {
      if (Date.now() >= until) return false;
      await new Promise((resolve) => setTimeout(resolve, this.pollMs));
    }
    return true;
  }

  /**
   * The prepare of `t` went on after `t` ended (aborted, or its deadline): the freeze it may have
   * set after the thaw is lifted here, as that thaw could not see it (the gate cells are per generation).
   */
  private ended(t: Take): CheckpointReply {
    this.open(t);
    return { ok: false, why: t.why ?? `checkpoint is ${t.phase}` };
  }

  private notPrepared(t: Take, why: string): CheckpointReply {
    this.thaw(t, t.why ?? why);
    // Already thawed (aborted while this waited): the freeze set since is lifted all the same.
    this.open(t);
    return { ok: false, why: t.why ?? why };
  }

  /** Ends a take that was not committed: every held call goes on. */
  private thaw(t: Take, why: string): void {
    if (t.phase !== 'preparing' && t.phase !== 'prepared') return;
    t.phase = 'thawed';
    t.why = why;
    clearTimeout(t.timer);
    this.open(t);
    this.releaseTransactions();
  }

  private open(t: Take): void {
    for (const v of [2 * t.gen, 2 * t.gen + 1]) Atomics.compareExchange(this.cells, FROZEN, v, 0);
    Atomics.notify(this.cells, FROZEN);
  }

  private releaseTransactions(): void {
    Atomics.store(this.cells, TXHOLD, 0);
    Atomics.notify(this.cells, TXHOLD);
  }
}
