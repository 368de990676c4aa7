import type { SqliteOp } from '../../lib/entry';
import type { PageSet } from '../../lib/sqlite-pages';

/** Where a standby database stands: the generation and position of the last transaction it holds, and that entry's host order. */
export interface DbPosition {
  w: string;
  k: number;
  o: number;
}

/** What to do with a `sqlite` entry. */
export type DbVerdict =
  /** Apply these transactions, in order; `whole` when they replace the database (an image). */
  | { kind: 'apply'; txns: readonly PageSet[]; whole: boolean }
  /** The standby holds all of it already (another journal's copy, or an older image). */
  | { kind: 'duplicate' }
  /** It cannot be placed: it builds on a state the standby does not hold. */
  | { kind: 'doubt'; why: string };

/**
 * Decides an entry against the standby's position, with no I/O. Several processes writing one
 * database each journal every frame since their last read, so the same transaction can come
 * from two journals: within a generation the standby takes each transaction once, from the
 * first copy that continues it. An image applies when it is newer (in its generation, or by
 * host order across generations); a change only on the state it builds on. Anything else is
 * a doubt: never a guess.
 */
export function decide(at: DbPosition | undefined, op: SqliteOp, o: number, txns: readonly PageSet[]): DbVerdict {
  if (op.kind === 'image') {
    if (at === undefined) return { kind: 'apply', txns, whole: true };
    const newer = op.w === at.w ? op.k > at.k : o > at.o;
    return newer ? { kind: 'apply', txns, whole: true } : { kind: 'duplicate' };
  }
  const bw = op.bw!;
  const bk = op.bk!;
  if (at === undefined) return { kind: 'doubt', why: `a change building on ${label(bw, bk)} came before any image of the database` };
  if (op.w === at.w) {
    if (op.k <= at.k) return { kind: 'duplicate' };
    // Frames of a generation begin at 0, or where the change's base is when it is in the same one.
    let start = bw === op.w ? bk : 0;
    if (start > at.k) return { kind: 'doubt', why: `a change from ${label(op.w, start)} came while the standby holds ${label(at.w, at.k)}: transactions between are missing` };
    for (let i = 0; i < txns.length; i++) {
      const t = txns[i]!;
      if (t.end <= at.k) {
        start = t.end;
        continue;
      }
      if (start !== at.k) return { kind: 'doubt', why: `a transaction from ${label(op.w, start)} to ${t.end} spans the standby's ${label(at.w, at.k)}` };
      return { kind: 'apply', txns: txns.slice(i), whole: false };
    }
    // Positions past every transaction: nothing committed in between (a restart of the WAL alone).
    return { kind: 'apply', txns: [], whole: false };
  }
  if (bw === at.w && bk === at.k) return { kind: 'apply', txns, whole: false };
  if (bw !== at.w && o < at.o) return { kind: 'duplicate' };
  return { kind: 'doubt', why: `a change building on ${label(bw, bk)} came while the standby holds ${label(at.w, at.k)}` };
}

function label(w: string, k: number): string {
  return w === 'r' ? `change counter ${k}` : `frame ${k} of WAL ${w}`;
}
