import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EntryHeader } from '../../lib/entry';
import { replaceFile } from '../../lib/durable-file';
import { DEFAULTS } from '../../lib/settings';

const DEFAULT_CAP = DEFAULTS.standby.versionsCap;

/**
 * `c` and `g` are in the primary's wall-clock ms (snapshots); the rest in host order (EntryHead.o, µs):
 * `A` any change to the object, `F` a change that replaced it whole, `N` one that was not an append,
 * `R` removed (with all below), `M` moved away (with all below), `S` a change anywhere below it.
 */
type Kind = 'c' | 'g' | OrderKind;
type OrderKind = 'A' | 'F' | 'N' | 'R' | 'M' | 'S';
const ORDER_KINDS: readonly OrderKind[] = ['A', 'F', 'N', 'R', 'M', 'S'];

/** What to do with an entry given the host order of what the standby already applied to its object. */
export type OrderVerdict = 'apply' | 'skip' | 'doubt';

/** An object the standby cannot be sure equals the primary's, and why. */
export interface Doubt {
  root: string;
  path: string;
  why: string;
  /** When the standby began to doubt it, ms since 1970. */
  at: number;
}

/** Operations after which the object's state does not depend on what came before. */
const REPLACES = new Set<string>(['put', 'symlink', 'mkdir', 'rm']);

/**
 * When each object on the standby last changed, in the primary's time, so that a
 * snapshot (baseline, watch, repair: EntryHead.b) read before a change that was
 * applied ahead of it is skipped instead of putting an older version on top of a
 * newer one. Two marks per path: `changed` (any change to the object) and `gone`
 * (removed or moved away, which also covers everything that was below it).
 *
 * Memory is bounded: past `cap` paths the oldest half is forgotten and `floor`
 * rises to the newest time forgotten; a snapshot read at or before the floor
 * cannot be decided and is skipped (counted; `understudy verify --repair` mends).
 * The marks are kept in an append-only log under --state, written with each
 * applied entry and fsynced with each commit, so a restarted replayer still knows.
 */
export class Versions {
  private readonly changed = new Map<string, number>();
  private readonly gone = new Map<string, number>();
  private readonly order = new Map<OrderKind, Map<string, number>>(ORDER_KINDS.map((k) => [k, new Map()]));
  /** The journal whose change set each order mark (by kind and object): a journal's own entries are never late to each other. */
  private readonly markedBy = new Map<string, string>();
  private readonly doubts = new Map<string, Doubt>();
  private floor = 0;
  /** Host order at or below which marks were forgotten: an entry that old cannot be placed. */
  private orderFloor = 0;
  private fd: number;
  private lines = 0;
  /** How much of the log the last good commit made durable: a rollback cuts it back to this. */
  private synced = 0;
  private readonly file: string;
  /** Lines of the note being made, written together when it ends. */
  private batch: string[] | undefined;

  /** Opens the log in `dir`; `knownUpTo` is the newest change already applied when no log exists yet. */
  constructor(dir: string, knownUpTo: number, private readonly cap = DEFAULT_CAP) {
    this.file = path.join(dir, 'versions.log');
    if (fs.existsSync(this.file)) this.load();
    else this.floor = knownUpTo; // a standby older than this log: what it applied before is unknown
    this.fd = -1;
    this.compact();
  }

  /**
   * True when a snapshot of r/p read at `b`, by journal `j`, is older than what the standby has (or
   * cannot be told apart from it). A mark `j` set itself does not count: a journal's own entries
   * come in its order, and a snapshot it read in the same millisecond as its removal of the
   * directory above (a watcher journaling a replaced directory) is newer, not stale.
   */
  stale(r: string, p: string, b: number, j?: string): boolean {
    if (b <= this.floor) return true;
    const newer = (kind: 'c' | 'g', k: string): boolean => (this.map(kind).get(k) ?? -1) >= b && (j === undefined || this.markedBy.get(kind + k) !== j);
    if (newer('c', key(r, p))) return true;
    for (let q = p; ; q = q.slice(0, q.lastIndexOf('/'))) {
      if (newer('g', key(r, q))) return true;
      if (!q.includes('/')) return false;
    }
  }

  /** Whether the newest `stale` answer came from forgotten history rather than a known change. */
  undecided(b: number): boolean {
    return b <= this.floor;
  }

  /**
   * Where entry `h` stands against what the standby applied to its object from other journals.
   * One journal's entries come in its own order; another journal's may arrive after changes the
   * host made later (an outage, a backlog shipped late). A late entry is skipped when a later
   * change made it irrelevant (the object replaced whole, or removed with what was above it),
   * applied when it commutes with what came after (an append at its true offset after appends),
   * and otherwise the object is in doubt: the standby cannot reproduce the primary's order.
   */
  place(h: EntryHeader): OrderVerdict {
    const o = h.o;
    if (o === undefined || h.r === '') return 'apply';
    // A mark this journal set itself is from its own later entries: this is a re-apply after a restart, in its order.
    const at = (k: OrderKind, r: string, p: string): number => {
      const kk = key(r, p);
      return this.markedBy.get(k + kk) === h.j ? -1 : this.order.get(k)!.get(kk) ?? -1;
    };
    const aboveOrAt = (k: OrderKind, r: string, p: string): number => {
      let m = -1;
      for (let q = p; ; q = q.slice(0, q.lastIndexOf('/'))) {
        m = Math.max(m, at(k, r, q));
        if (!q.includes('/')) return m;
      }
    };
    const movesOthers = h.op === 'rename' || h.op === 'link';
    const subtree = h.op === 'rm' || h.op === 'rename';
    const late = at('A', h.r, h.p) > o || (subtree && at('S', h.r, h.p) > o) ||
      aboveOrAt('R', h.r, h.p) > o || aboveOrAt('M', h.r, h.p) > o ||
      (h.op === 'rename' && (at('A', h.toRoot, h.to) > o || aboveOrAt('R', h.toRoot, h.to) > o)) ||
      (h.op === 'link' && at('A', h.fromRoot, h.from) > o);
    if (!late) return o <= this.orderFloor ? 'doubt' : 'apply';
    if (movesOthers || aboveOrAt('M', h.r, h.p) > o) return 'doubt';
    if (aboveOrAt('R', h.r, h.p) > o || at('F', h.r, h.p) > o) return 'skip';
    if (h.op === 'append' && at('N', h.r, h.p) < o && !subtree) return 'apply';
    return 'doubt';
  }

  /** Notes an applied entry: its object (and for a rename, both ends) changed at its time. */
  note(h: EntryHeader): void {
    // One write(2) for all of an entry's marks rather than one a mark: the replayer makes one note an apply.
    this.batch = [];
    try {
      this.noteMarks(h);
    } finally {
      const lines = this.batch;
      this.batch = undefined;
      if (lines.length > 0) fs.writeSync(this.fd, lines.join(''));
    }
    if (this.size() > this.cap) this.forgetOldest();
  }

  private noteMarks(h: EntryHeader): void {
    const time = h.b ?? h.t;
    const j = h.j;
    this.mark('c', h.r, h.p, time, j);
    if (h.op === 'rm') this.mark('g', h.r, h.p, time, j);
    if (h.op === 'rename') {
      this.mark('g', h.r, h.p, time, j);
      this.mark('g', h.toRoot, h.to, time, j);
      this.mark('c', h.toRoot, h.to, time, j);
    }
    if (h.o !== undefined && h.r !== '') this.noteOrder(h, h.o);
    // A snapshot, or a change that replaced the object whole in order, makes it right again.
    // A database's image replaces it whole too (replayer/apply/sqlite).
    const whole = REPLACES.has(h.op) || (h.op === 'sqlite' && h.kind === 'image');
    if (h.b !== undefined || (whole && h.c === undefined) || (whole && h.c?.i === 0)) this.clearDoubt(h.r, h.p, h.op === 'rm');
    if (h.op === 'rename') this.clearDoubt(h.toRoot, h.to, false);
  }

  /** Notes that the standby cannot be sure `r/p` equals the primary's (said by status until a later change or a repair replaces it). */
  doubt(r: string, p: string, why: string): void {
    const k = key(r, p);
    if (this.doubts.has(k)) return;
    const at = Date.now();
    this.doubts.set(k, { root: r, path: p, why, at });
    this.writeLine(['D', at, r, p, why]);
  }

  /** `r/p` is no longer in doubt: what made it so was mended (a rebase made the standby whole). */
  undoubt(r: string, p: string): void {
    this.clearDoubt(r, p, false);
  }

  /** Objects in doubt now, the first `limit` of them. */
  inDoubt(limit = Infinity): Doubt[] {
    const out: Doubt[] = [];
    for (const d of this.doubts.values()) {
      if (out.length >= limit) break;
      out.push(d);
    }
    return out;
  }

  /** How many objects are in doubt. */
  get doubtCount(): number {
    return this.doubts.size;
  }

  /**
   * A verify found `roots` equal comparing from `since` on: doubts older than that are settled,
   * those of a journal's lost history too (the trees are equal all the same), except `unsettled` paths.
   */
  settle(roots: readonly string[], since: number, unsettled: ReadonlySet<string>): number {
    let n = 0;
    for (const [k, d] of this.doubts) {
      if (d.at >= since || unsettled.has(`${d.root}/${d.path}`) || (d.root !== '' && !roots.includes(d.root))) continue;
      this.doubts.delete(k);
      this.writeLine(['d', 0, d.root, d.path]);
      n++;
    }
    return n;
  }

  private clearDoubt(r: string, p: string, below: boolean): void {
    if (this.doubts.size === 0) return;
    for (const [k, d] of this.doubts) {
      if (d.root === r && (d.path === p || (below && d.path.startsWith(p + '/')))) {
        this.doubts.delete(k);
        this.writeLine(['d', 0, d.root, d.path]);
      }
    }
  }

  private noteOrder(h: EntryHeader, o: number): void {
    const j = h.j;
    this.mark('A', h.r, h.p, o, j);
    if (h.op !== 'append') this.mark('N', h.r, h.p, o, j);
    if (REPLACES.has(h.op)) this.mark('F', h.r, h.p, o, j);
    if (h.op === 'rm') this.mark('R', h.r, h.p, o, j);
    if (h.op === 'rename') {
      this.mark('M', h.r, h.p, o, j);
      for (const k of ['A', 'N', 'F'] as const) this.mark(k, h.toRoot, h.to, o, j);
      this.markAbove(h.toRoot, h.to, o, j);
    }
    this.markAbove(h.r, h.p, o, j);
  }

  /** Every directory above `p` had a change below it at `o`. */
  private markAbove(r: string, p: string, o: number, j: string): void {
    for (let q = p; q.includes('/'); ) {
      q = q.slice(0, q.lastIndexOf('/'));
      this.mark('S', r, q, o, j);
    }
    this.mark('S', r, '', o, j);
  }

  private size(): number {
    let n = this.changed.size + this.gone.size;
    for (const m of this.order.values()) n += m.size;
    return n;
  }

  /** Makes the marks written so far durable (before the position that covers them is). */
  sync(): void {
    fs.fsyncSync(this.fd);
    this.synced = fs.fstatSync(this.fd).size;
    if (this.lines > 4 * this.size() + DEFAULTS.standby.versionsSlackLines) this.compact();
  }

  /**
   * Forgets the marks of entries applied since the last good commit: they are applied again
   * from there, and a snapshot must not then be found "stale" against its own mark.
   */
  rollback(): void {
    fs.ftruncateSync(this.fd, this.synced);
    this.changed.clear();
    this.gone.clear();
    for (const m of this.order.values()) m.clear();
    this.markedBy.clear();
    this.doubts.clear();
    this.floor = 0;
    this.orderFloor = 0;
    this.load();
  }

  close(): void {
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
  }

  private map(kind: Kind): Map<string, number> {
    return kind === 'c' ? this.changed : kind === 'g' ? this.gone : this.order.get(kind)!;
  }

  private mark(kind: Kind, r: string, p: string, time: number, j?: string): void {
    const map = this.map(kind);
    const k = key(r, p);
    if ((map.get(k) ?? -1) >= time) return;
    map.set(k, time);
    if (j !== undefined) this.markedBy.set(kind + k, j);
    this.writeLine(j === undefined ? [kind, time, r, p] : [kind, time, r, p, j]);
  }

  private writeLine(v: unknown[]): void {
    const line = JSON.stringify(v) + '\n';
    if (this.batch !== undefined) this.batch.push(line);
    else fs.writeSync(this.fd, line);
    this.lines++;
  }

  /** Forgets the older half of each clock's marks, raising that clock's floor. */
  private forgetOldest(): void {
    const halve = (maps: Map<string, number>[]): number => {
      const times = maps.flatMap((m) => [...m.values()]).sort((a, b) => a - b);
      if (times.length === 0) return -1;
      const cut = times[Math.floor(times.length / 2)];
      for (const map of maps) for (const [k, t] of map) if (t <= cut) map.delete(k);
      for (const k of this.markedBy.keys()) if (!this.map(k[0] as Kind).has(k.slice(1))) this.markedBy.delete(k);
      return cut;
    };
    this.floor = Math.max(this.floor, halve([this.changed, this.gone]));
    this.orderFloor = Math.max(this.orderFloor, halve([...this.order.values()]));
    this.compact();
  }

  private load(): void {
    const text = fs.readFileSync(this.file, 'utf8');
    for (const line of text.split('\n')) {
      if (line === '') continue;
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch {
        continue; // a line cut short by a kill: the entry it belongs to is applied again on restart
      }
      if (!Array.isArray(v) || typeof v[1] !== 'number') continue;
      if (v[0] === 'floor') this.floor = Math.max(this.floor, v[1]);
      else if (v[0] === 'orderFloor') this.orderFloor = Math.max(this.orderFloor, v[1]);
      else if (typeof v[2] !== 'string' || typeof v[3] !== 'string') continue;
      else if (v[0] === 'D') this.doubts.set(key(v[2], v[3]), { root: v[2], path: v[3], why: String(v[4] ?? ''), at: v[1] });
      else if (v[0] === 'd') this.doubts.delete(key(v[2], v[3]));
      else if (v[0] === 'c' || v[0] === 'g' || (ORDER_KINDS as readonly string[]).includes(v[0] as string)) {
        const map = this.map(v[0] as Kind);
        const k = key(v[2], v[3]);
        if ((map.get(k) ?? -1) < v[1]) {
          map.set(k, v[1]);
          if (typeof v[4] === 'string') this.markedBy.set(v[0] + k, v[4]);
        }
      }
    }
  }

  /** Rewrites the log as the marks it holds now, durably. */
  private compact(): void {
    const out: string[] = [JSON.stringify(['floor', this.floor]), JSON.stringify(['orderFloor', this.orderFloor])];
    const kinds: [Kind, Map<string, number>][] = [['c', this.changed], ['g', this.gone], ...[...this.order].map(([k, m]) => [k, m] as [Kind, Map<string, number>])];
    for (const [kind, map] of kinds) {
      for (const [k, t] of map) {
        const i = k.indexOf('\0');
        const j = this.markedBy.get(kind + k);
        out.push(JSON.stringify(j === undefined ? [kind, t, k.slice(0, i), k.slice(i + 1)] : [kind, t, k.slice(0, i), k.slice(i + 1), j]));
      }
    }
    for (const d of this.doubts.values()) out.push(JSON.stringify(['D', d.at, d.root, d.path, d.why]));
    // Until the rename the old log stays open and whole: a failure leaves it as it was.
    replaceFile(this.file, out.join('\n') + '\n');
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = fs.openSync(this.file, 'a', 0o600);
    this.lines = out.length;
    this.synced = fs.fstatSync(this.fd).size;
  }
}

function key(r: string, p: string): string {
  return `${r}\0${p}`;
}
