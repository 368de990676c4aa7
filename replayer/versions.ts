import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EntryHeader } from '../lib/entry';

/** How many objects are remembered at most; past it the oldest half is forgotten. */
const DEFAULT_CAP = 200_000;

type Kind = 'c' | 'g';

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
  private floor = 0;
  private fd: number;
  private lines = 0;
  /** How much of the log the last good commit made durable: a rollback cuts it back to this. */
  private synced = 0;
  private readonly file: string;

  /** Opens the log in `dir`; `knownUpTo` is the newest change already applied when no log exists yet. */
  constructor(dir: string, knownUpTo: number, private readonly cap = DEFAULT_CAP) {
    this.file = path.join(dir, 'versions.log');
    if (fs.existsSync(this.file)) this.load();
    else this.floor = knownUpTo; // a standby older than this log: what it applied before is unknown
    this.fd = -1;
    this.compact();
  }

  /** True when a snapshot of r/p read at `b` is older than what the standby has (or cannot be told apart from it). */
  stale(r: string, p: string, b: number): boolean {
    if (b <= this.floor) return true;
    if ((this.changed.get(key(r, p)) ?? -1) >= b) return true;
    for (let q = p; ; q = q.slice(0, q.lastIndexOf('/'))) {
      if ((this.gone.get(key(r, q)) ?? -1) >= b) return true;
      if (!q.includes('/')) return false;
    }
  }

  /** Whether the newest `stale` answer came from forgotten history rather than a known change. */
  undecided(b: number): boolean {
    return b <= this.floor;
  }

  /** Notes an applied entry: its object (and for a rename, both ends) changed at its time. */
  note(h: EntryHeader): void {
    const time = h.b ?? h.t;
    this.mark('c', h.r, h.p, time);
    if (h.op === 'rm') this.mark('g', h.r, h.p, time);
    if (h.op === 'rename') {
      this.mark('g', h.r, h.p, time);
      this.mark('g', h.toRoot, h.to, time);
      this.mark('c', h.toRoot, h.to, time);
    }
    if (this.changed.size + this.gone.size > this.cap) this.forgetOldest();
  }

  /** Makes the marks written so far durable (before the position that covers them is). */
  sync(): void {
    fs.fsyncSync(this.fd);
    this.synced = fs.fstatSync(this.fd).size;
    if (this.lines > 4 * (this.changed.size + this.gone.size) + 10_000) this.compact();
  }

  /**
   * Forgets the marks of entries applied since the last good commit: they are applied again
   * from there, and a snapshot must not then be found "stale" against its own mark.
   */
  rollback(): void {
    fs.ftruncateSync(this.fd, this.synced);
    this.changed.clear();
    this.gone.clear();
    this.floor = 0;
    this.load();
  }

  close(): void {
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
  }

  private mark(kind: Kind, r: string, p: string, time: number): void {
    const map = kind === 'c' ? this.changed : this.gone;
    const k = key(r, p);
    if ((map.get(k) ?? -1) >= time) return;
    map.set(k, time);
    fs.writeSync(this.fd, JSON.stringify([kind, time, r, p]) + '\n');
    this.lines++;
  }

  private forgetOldest(): void {
    const times = [...this.changed.values(), ...this.gone.values()].sort((a, b) => a - b);
    const cut = times[Math.floor(times.length / 2)];
    for (const map of [this.changed, this.gone]) for (const [k, t] of map) if (t <= cut) map.delete(k);
    this.floor = Math.max(this.floor, cut);
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
      if (Array.isArray(v) && v[0] === 'floor' && typeof v[1] === 'number') this.floor = Math.max(this.floor, v[1]);
      else if (Array.isArray(v) && (v[0] === 'c' || v[0] === 'g') && typeof v[1] === 'number' && typeof v[2] === 'string' && typeof v[3] === 'string') {
        const map = v[0] === 'c' ? this.changed : this.gone;
        const k = key(v[2], v[3]);
        map.set(k, Math.max(map.get(k) ?? -1, v[1]));
      }
    }
  }

  /** Rewrites the log as the marks it holds now: temporary file, fsync, rename. */
  private compact(): void {
    const tmp = `${this.file}.tmp`;
    const out: string[] = [JSON.stringify(['floor', this.floor])];
    for (const [kind, map] of [['c', this.changed], ['g', this.gone]] as const) {
      for (const [k, t] of map) {
        const i = k.indexOf('\0');
        out.push(JSON.stringify([kind, t, k.slice(0, i), k.slice(i + 1)]));
      }
    }
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd, out.join('\n') + '\n');
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    if (this.fd >= 0) fs.closeSync(this.fd);
    fs.renameSync(tmp, this.file);
    this.fd = fs.openSync(this.file, 'a', 0o600);
    this.lines = out.length;
    this.synced = fs.fstatSync(this.fd).size;
  }
}

function key(r: string, p: string): string {
  return `${r}\0${p}`;
}
