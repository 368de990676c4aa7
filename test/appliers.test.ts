import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { serialize } from 'node:v8';
import type { ApplyOpName, EntryHeader } from '../lib/entry';
import { BadEntryError, ConfinementError } from '../lib/errors';
import { NO_HISTORY, type Applier, type ApplierContext, type ChangeOrder, type Data, type SnapshotMarks } from '../replayer/apply/applier';
import { FsApplier } from '../replayer/apply/fs';
import { TEMP_PREFIX, TEMP_SUFFIX } from '../replayer/apply/temp-files';
import { MemoryApplier, MemoryDisk } from '../replayer/apply/memory';
import { APPLIERS, Appliers, type ApplierFactory } from '../replayer/apply/registry';
import type { OrderVerdict } from '../replayer/order/versions';
import { loadConfig, loadPendingJobs } from '../replayer/replicas';
import { writeSync } from '../replayer/write';
import Database from 'better-sqlite3';
import { encodePages } from '../lib/sqlite-pages';
import { tableRows } from './helpers/sqlite-model';

// One list of cases, run against every applier of the registry and the in-memory one.

const at = (s: number) => ({ j: 'app', e: 1, s, t: 1000 + s });
/** One entry of every operation: the type makes a new operation a compile error here until it has one. */
const SAMPLES: { [K in ApplyOpName]: EntryHeader & { op: K } } = {
  put: { ...at(1), r: 'data', p: 'f', op: 'put', mode: 0o644 },
  append: { ...at(1), r: 'data', p: 'f', op: 'append', at: 0 },
  pwrite: { ...at(1), r: 'data', p: 'f', op: 'pwrite', at: 0 },
  truncate: { ...at(1), r: 'data', p: 'f', op: 'truncate', size: 0 },
  mkdir: { ...at(1), r: 'data', p: 'd', op: 'mkdir', mode: 0o755 },
  rm: { ...at(1), r: 'data', p: 'f', op: 'rm' },
  rename: { ...at(1), r: 'data', p: 'f', op: 'rename', toRoot: 'data', to: 'g' },
  symlink: { ...at(1), r: 'data', p: 'l', op: 'symlink', target: 'f' },
  link: { ...at(1), r: 'data', p: 'h', op: 'link', fromRoot: 'data', from: 'f' },
  chmod: { ...at(1), r: 'data', p: 'f', op: 'chmod', mode: 0o600 },
  config: { ...at(1), r: '', p: 'cfg', op: 'config', key: ['k'] },
  job: { ...at(1), r: '', p: 'q', op: 'job', id: '7.1', ev: 'enqueued', captured: true },
  sqlite: { ...at(1), r: 'data', p: 'app.db', op: 'sqlite', kind: 'image', w: 'r', k: 1, ps: 4096 },
};
const OPS = Object.keys(SAMPLES) as ApplyOpName[];

/** A standby's directories for one test, and what its position store covers. */
interface Env {
  base: string;
  root: string;
  stateDir: string;
  disk: MemoryDisk;
  covered: { e: number; s: number } | undefined;
}

function env(t: { teardown(fn: () => void): void }): Env {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-appliers-'));
  t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));
  const root = path.join(base, 'root');
  const stateDir = path.join(base, 'state');
  fs.mkdirSync(root);
  fs.mkdirSync(stateDir);
  return { base, root, stateDir, disk: new MemoryDisk(), covered: undefined };
}

function context(e: Env): ApplierContext {
  return { roots: new Map([['data', e.root]]), stateDir: e.stateDir, write: writeSync, log: () => undefined, ...NO_HISTORY, applied: () => e.covered };
}

/** Every file and directory under `dir`, hidden ones too, with a file's content: what a reader of the tree sees. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const d of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const rel = path.relative(dir, path.join(d.parentPath, d.name));
    out[rel] = d.isDirectory() ? '/' : fs.readFileSync(path.join(dir, rel), 'utf8');
  }
  return out;
}

interface Case {
  name: string;
  /** Opens the applier over `e`, as a (re)started replayer does. */
  open(e: Env): Applier;
  /** The operations it takes. */
  ops: ApplyOpName[];
  /** An entry it takes. */
  entry: [EntryHeader, Data];
  /** What a reader of the standby sees of its objects, before and after `entry`. */
  read(e: Env): unknown;
  before: unknown;
  after: unknown;
  /** An entry it must refuse. */
  refused: [EntryHeader, Data];
  /** Leaves what a replayer killed while applying leaves beside its objects; how many objects clean-up must remove. */
  leave(e: Env): number;
  /** Takes away what a power loss takes (what was written and not fsynced), where a test can. */
  powerLoss(e: Env): void;
}

/** The one applier of `factory`, built the way the replayer builds the registry's. */
const fromRegistry = (factory: ApplierFactory) => (e: Env): Applier => Appliers.open(context(e), [factory]).all[0];
const objectsLog = (e: Env): string => path.join(e.stateDir, 'objects.log');
/** objects.log is written, never fsynced: a power loss may take all of it. */
const loseObjectsLog = (e: Env): void => fs.truncateSync(objectsLog(e), 0);

/** A real one-row database in rollback mode, as the agent's image of it. */
const SQLITE_IMAGE = ((): { data: Buffer; counter: number } => {
  const db = new Database(':memory:');
  db.exec("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT); INSERT INTO kv VALUES (1, 'one')");
  const buf = db.serialize();
  db.close();
  const n = buf.length / 4096;
  const pages = new Map<number, Buffer>();
  for (let i = 0; i < n; i++) pages.set(i + 1, buf.subarray(i * 4096, (i + 1) * 4096));
  return { data: encodePages(4096, [{ end: buf.readUInt32BE(24), size: n, pages }]), counter: buf.readUInt32BE(24) };
})();

/** A standby database's rows as a read-only reader sees them, or undefined when there is none. */
function standbyRows(file: string): Record<string, unknown[]> | undefined {
  if (!fs.existsSync(file)) return undefined;
  const db = new Database(file, { readonly: true });
  try {
    checkIntegrity(db);
    return tableRows(db);
  } finally {
    db.close();
  }
}

function checkIntegrity(db: Database.Database): void {
  const r = db.pragma('integrity_check', { simple: true });
  if (r !== 'ok') throw new Error(`integrity_check: ${String(r)}`);
}

/** The cases of each registry applier, by name. */
const REGISTRY_CASES: Record<string, Omit<Case, 'name' | 'open'>> = {
  fs: {
    ops: ['put', 'append', 'pwrite', 'truncate', 'mkdir', 'rm', 'rename', 'symlink', 'link', 'chmod'],
    entry: [{ ...at(1), r: 'data', p: 'dir/f.txt', op: 'put', mode: 0o640 }, { buf: Buffer.from('one') }],
    read: (e) => tree(e.root),
    before: {},
    after: { dir: '/', 'dir/f.txt': 'one' },
    refused: [{ ...at(2), r: 'nowhere', p: 'f', op: 'put', mode: 0o644 }, { buf: Buffer.from('x') }],
    leave(e) {
      // What replaceWith leaves when the process dies between creating its temporary and the rename.
      fs.writeFileSync(path.join(e.root, `${TEMP_PREFIX}${randomUUID()}${TEMP_SUFFIX}`), 'half');
      fs.writeFileSync(path.join(e.root, 'dir', `${TEMP_PREFIX}${randomUUID()}${TEMP_SUFFIX}`), 'half');
      return 2;
    },
    powerLoss: () => undefined, // a test cannot drop the page cache: what was written stays readable
  },
  config: {
    ops: ['config'],
    entry: [{ ...at(1), r: '', p: 'cfg', op: 'config', key: ['a', 'b'] }, { buf: Buffer.from('42') }],
    read: (e) => loadConfig(e.stateDir, 'cfg'),
    before: {},
    after: { a: { b: 42 } },
    refused: [{ ...at(2), r: '', p: 'cfg', op: 'config', key: ['a'] }, { buf: Buffer.from('not JSON') }],
    leave: () => 0,
    powerLoss: loseObjectsLog,
  },
  sqlite: {
    ops: ['sqlite'],
    entry: [{ ...at(1), r: 'data', p: 'app.db', op: 'sqlite', kind: 'image', w: 'r', k: SQLITE_IMAGE.counter, ps: 4096 }, { buf: SQLITE_IMAGE.data }],
    read: (e) => standbyRows(path.join(e.root, 'app.db')),
    before: undefined,
    after: { kv: ['[1,"one"]'] },
    refused: [{ ...at(2), r: 'nowhere', p: 'app.db', op: 'sqlite', kind: 'image', w: 'r', k: 1, ps: 4096 }, { buf: SQLITE_IMAGE.data }],
    leave: () => 0,
    powerLoss: () => undefined, // a test cannot drop the page cache
  },
  queue: {
    ops: ['job'],
    entry: [{ ...at(1), r: '', p: 'q', op: 'job', id: '7.1', ev: 'enqueued', captured: true }, { buf: serialize({ n: 1 }) }],
    read: (e) => loadPendingJobs(e.stateDir, 'q').map((j) => [j.id, j.payload]),
    before: [],
    after: [['7.1', { n: 1 }]],
    refused: [{ ...at(2), r: '', p: '../q', op: 'job', id: '7.2', ev: 'enqueued', captured: false }, { buf: Buffer.alloc(0) }],
    leave: () => 0,
    powerLoss: loseObjectsLog,
  },
};

const CASES: Case[] = [
  ...APPLIERS.map((factory): Case => {
    const name = nameOf(factory);
    return { name, open: fromRegistry(factory), ...REGISTRY_CASES[name] };
  }),
  {
    name: 'memory',
    open: (e) => new MemoryApplier(e.disk, new Set(['put', 'rm']), new Set(['data'])),
    ops: ['put', 'rm'],
    entry: [{ ...at(1), r: 'data', p: 'f', op: 'put', mode: 0o644 }, { buf: Buffer.from('one') }],
    read: (e) => Object.fromEntries([...e.disk.visible].map(([k, v]) => [k, v.toString()])),
    before: {},
    after: { 'data/f': 'one' },
    refused: [{ ...at(2), r: 'nowhere', p: 'f', op: 'put', mode: 0o644 }, { buf: Buffer.from('x') }],
    leave: (e) => (e.disk.leftovers = 3),
    powerLoss: (e) => e.disk.powerLoss(),
  },
];

/** A registry line's applier name, read from an applier it builds over throwaway directories. */
function nameOf(factory: ApplierFactory): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-appliers-name-'));
  try {
    const appliers = Appliers.open(context({ root: dir, stateDir: dir, base: dir, disk: new MemoryDisk(), covered: undefined }), [factory]);
    const name = appliers.all[0].name;
    appliers.close();
    return name;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Descriptors this process holds open on anything under `dir`. */
function openUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir + path.sep)) out.push(target);
    } catch {
      // closed while we looked (the readdir's own descriptor)
    }
  }
  return out;
}

for (const c of CASES) {
  test(`${c.name}: takes exactly its operations`, (t) => {
    const a = c.open(env(t));
    t.deepEqual(OPS.filter((op) => a.handles(SAMPLES[op])), c.ops);
    a.close();
  });

  test(`${c.name}: apply then sync is durable: after a power loss a reopened applier sees it, though no position covers it yet`, async (t) => {
    const e = env(t);
    const a = c.open(e);
    t.deepEqual(c.read(e), c.before);
    t.is(a.apply(...c.entry), 'applied');
    await a.sync();
    a.close();
    c.powerLoss(e);
    const b = c.open(e);
    t.deepEqual(c.read(e), c.after);
    b.close();
  });

  test(`${c.name}: close releases every file it holds, and closing again is harmless`, async (t) => {
    const e = env(t);
    const a = c.open(e);
    a.apply(...c.entry);
    await a.sync();
    a.apply(...c.entry); // applied again after the commit: passed over or rewritten, never an error
    a.close();
    t.deepEqual(openUnder(e.base), []);
    t.notThrows(() => a.close());
  });

  test(`${c.name}: after a kill, the restarted applier removes what was left and keeps what the positions cover`, (t) => {
    const e = env(t);
    const killed = c.open(e);
    t.teardown(() => killed.close()); // its process would be gone; here its descriptors are released at the end
    killed.apply(...c.entry); // never synced, never closed
    const left = c.leave(e);
    e.covered = { e: c.entry[0].e, s: c.entry[0].s };
    const b = c.open(e);
    t.is(b.cleanUp(), left);
    t.is(b.cleanUp(), 0, 'nothing is left to remove the second time');
    t.deepEqual(c.read(e), c.after);
    b.close();
  });

  test(`${c.name}: an entry it must refuse is refused as a bad entry and changes nothing`, async (t) => {
    const e = env(t);
    const a = c.open(e);
    t.true(a.handles(c.refused[0]), 'the refused entry is one of its operations: it is refused for what it says');
    const err = t.throws(() => a.apply(...c.refused));
    t.true(err instanceof BadEntryError || err instanceof ConfinementError, `${err?.name}: ${err?.message}`);
    await a.sync();
    t.deepEqual(c.read(e), c.before);
    a.close();
  });
}

test('every operation has exactly one applier in the registry, and every registry applier has its cases here', (t) => {
  const e = env(t);
  const appliers = Appliers.open(context(e));
  for (const op of OPS) t.deepEqual(appliers.all.filter((a) => a.handles(SAMPLES[op])).length, 1, op);
  t.deepEqual(appliers.all.map((a) => a.name).sort(), Object.keys(REGISTRY_CASES).sort());
  appliers.close();
});

test('an entry no applier of the registry takes is a bad entry naming its operation', (t) => {
  const e = env(t);
  const onlyFs = Appliers.open(context(e), [APPLIERS[0]]);
  t.throws(() => onlyFs.apply(SAMPLES.config, { buf: Buffer.from('1') }), { instanceOf: BadEntryError, message: /"config"/ });
  onlyFs.close();
});

test('the registry commits config and queue together: one sync makes both replicas durable and empties the shared log', async (t) => {
  const e = env(t);
  const appliers = Appliers.open(context(e));
  appliers.apply(...REGISTRY_CASES.config.entry);
  appliers.apply(...REGISTRY_CASES.queue.entry);
  t.true(fs.statSync(objectsLog(e)).size > 0, 'both entries are in the log until the commit');
  await appliers.sync();
  t.is(fs.statSync(objectsLog(e)).size, 0);
  loseObjectsLog(e);
  t.deepEqual(loadConfig(e.stateDir, 'cfg'), REGISTRY_CASES.config.after);
  t.deepEqual(REGISTRY_CASES.queue.read(e), REGISTRY_CASES.queue.after);
  appliers.close();
});

/** Snapshot marks and an order that answer as told, and remember what they were asked and told. */
function history(stale: boolean, verdict: OrderVerdict) {
  const told: [string, OrderVerdict][] = [];
  const asked: string[] = [];
  const snapshots: SnapshotMarks = { stale: () => stale, undecided: () => stale };
  const order: ChangeOrder = {
    place: (h) => (asked.push(h.p), verdict),
    applied: (h, v) => void told.push([h.p, v]),
  };
  return { snapshots, order, told, asked };
}

const put = (p: string, b?: number): EntryHeader => ({ ...at(1), r: 'data', p, op: 'put', mode: 0o644, ...(b === undefined ? {} : { b }) });

test('fs: a snapshot older than what the standby has is stale: not applied, not placed, and said when history was forgotten', (t) => {
  const e = env(t);
  const said: string[] = [];
  const h = history(true, 'apply');
  const a = new FsApplier(new Map([['data', e.root]]), { snapshots: h.snapshots, order: h.order, log: (l) => said.push(l) });
  t.is(a.apply(put('snap', 999), { buf: Buffer.from('old') }), 'stale');
  t.is(a.apply(put('plain'), { buf: Buffer.from('new') }), 'applied', 'only snapshots (EntryHead.b) can be stale');
  t.deepEqual(tree(e.root), { plain: 'new' });
  t.deepEqual(h.asked, ['plain']);
  t.deepEqual(said, ['snapshot app.1.1 of data/snap is older than what this standby remembers; not applied (understudy verify --repair mends it)']);
});

test('fs: a change the order across journals passes over is superseded; one in doubt is applied and told so', (t) => {
  const e = env(t);
  const skip = history(false, 'skip');
  const a = new FsApplier(new Map([['data', e.root]]), { snapshots: skip.snapshots, order: skip.order });
  t.is(a.apply(put('late'), { buf: Buffer.from('x') }), 'superseded');
  t.deepEqual(tree(e.root), {});
  t.deepEqual(skip.told, []);
  const doubt = history(false, 'doubt');
  const b = new FsApplier(new Map([['data', e.root]]), { snapshots: doubt.snapshots, order: doubt.order });
  t.is(b.apply(put('late'), { buf: Buffer.from('x') }), 'applied');
  t.deepEqual(tree(e.root), { late: 'x' });
  t.deepEqual(doubt.told, [['late', 'doubt']]);
});

test('fs: clean-up removes only the replayer\'s own temporary names, at any depth', (t) => {
  const e = env(t);
  fs.mkdirSync(path.join(e.root, 'a/b'), { recursive: true });
  const mine = [`${TEMP_PREFIX}x${TEMP_SUFFIX}`, `a/b/${TEMP_PREFIX}y${TEMP_SUFFIX}`];
  const theirs = [`${TEMP_PREFIX}notes`, `a/report${TEMP_SUFFIX}`, `a/b/understudy-z${TEMP_SUFFIX}`];
  for (const f of [...mine, ...theirs]) fs.writeFileSync(path.join(e.root, f), f);
  const a = new FsApplier(new Map([['data', e.root]]));
  t.is(a.cleanUp(), mine.length);
  t.deepEqual(Object.keys(tree(e.root)).filter((f) => tree(e.root)[f] !== '/').sort(), [...theirs].sort());
});

test('fs: a directory rename applied again after a rewind replaces what the later entries left at its target', (t) => {
  const e = env(t);
  const found: string[] = [];
  const order: ChangeOrder = { place: () => 'apply', applied: (_h, _v, d) => void (d !== undefined && found.push(`${d.r}/${d.p}: ${d.why}`)) };
  const a = new FsApplier(new Map([['data', e.root]]), { order });
  const steps: [EntryHeader, Data][] = [
    [{ ...at(1), r: 'data', p: 'd', op: 'mkdir', mode: 0o755 }, { buf: Buffer.alloc(0) }],
    [{ ...at(2), r: 'data', p: 'd/x', op: 'put', mode: 0o644 }, { buf: Buffer.from('x') }],
    [{ ...at(3), r: 'data', p: 'd', op: 'rename', toRoot: 'data', to: 'e' }, { buf: Buffer.alloc(0) }],
    [{ ...at(4), r: 'data', p: 'e/y', op: 'put', mode: 0o644 }, { buf: Buffer.from('y') }],
  ];
  for (const [h, d] of steps) a.apply(h, d);
  t.deepEqual(found, []);
  // A failed fsync or a crash before the commit: everything is applied again from the start.
  for (const [h, d] of steps) a.apply(h, d);
  a.close();
  t.deepEqual(tree(e.root), { e: '/', 'e/x': 'x', 'e/y': 'y' });
  // From here a re-apply cannot be told from a standby that differs: the target is in doubt until verify settles it.
  t.deepEqual(found, ['data/e: app.1.3 (rename data/d → data/e) found ENOTEMPTY at its target on the standby, which it replaced']);
});

test('fs: what the applier holds for the commit is by inode, closed once synced or closed, and never more than its cap', async (t) => {
  const e = env(t);
  // The fds open on the test's root (other tests in this process open and close their own).
  const fds = () => fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(e.root);
    } catch {
      return false;
    }
  }).length;
  const a = new FsApplier(new Map([['data', e.root]]));
  // One file rewritten many times (each put a new inode, the last one's only name replaced), and
  // one appended to many times (one inode): neither holds more than a few fds.
  for (let s = 1; s <= 200; s++) a.apply({ ...at(s), r: 'data', p: 'f', op: 'put', mode: 0o644 }, { buf: Buffer.from(String(s)) });
  for (let s = 201; s <= 400; s++) a.apply({ ...at(s), r: 'data', p: 'g', op: 'append', at: s - 201 }, { buf: Buffer.from('g') });
  t.true(fds() <= 3, `${fds()} fds held for two files and their directory`);
  // Many distinct files: the oldest are fsynced on the way, so the count stays under the cap.
  for (let s = 401; s <= 1500; s++) a.apply({ ...at(s), r: 'data', p: `many/${s}`, op: 'put', mode: 0o644 }, { buf: Buffer.from('m') });
  t.true(fds() <= 2 * 512 + 2, `${fds()} fds held`);
  await a.sync();
  t.is(fds(), 0);
  a.apply({ ...at(1501), r: 'data', p: 'h', op: 'put', mode: 0o644 }, { buf: Buffer.from('h') });
  t.true(fds() > 0);
  a.close();
  t.is(fds(), 0);
  t.is(fs.readFileSync(path.join(e.root, 'f'), 'utf8'), '200');
  t.is(fs.readFileSync(path.join(e.root, 'g'), 'utf8'), 'g'.repeat(200));
});
