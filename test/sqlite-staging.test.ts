import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DbStaging } from '../replayer/apply/sqlite-staging';
import { tempDir } from './helpers/temp-dir';

// The sqlite applier's log of what it applied since its last commit, read back as a restarted
// replayer reads it: after a kill, all of it; after a power loss that undid a truncation, none
// of what an older commit already covered; a torn last record left out.

const page = (b: number): Buffer => Buffer.alloc(512, b);
const txn = (end: number, size: number, pgno: number, b: number) => ({ end, size, pages: new Map([[pgno, page(b)]]) });

test('steps logged after commit n come back, in order, only when the last durable commit is n; a torn tail is left out', (t) => {
  const file = path.join(tempDir(t, 'sqlite-staging'), 'staged.log');
  const s = new DbStaging(file, 7);
  s.add('data/a.db', 512, true, { w: 'r', k: 1, o: 10 }, [txn(1, 2, 1, 1)]);
  s.add('data/a.db', 512, false, { w: 'r', k: 2, o: 11 }, [txn(2, 2, 2, 2)]);
  s.forget('data/b.db');
  s.close();
  const back = DbStaging.recovered(file, 7);
  t.deepEqual(back.map((x) => ('gone' in x ? `${x.key} gone` : `${x.key} ${x.pos.k} ${[...x.txns[0]!.pages.values()][0]![0]}`)), ['data/a.db 1 1', 'data/a.db 2 2', 'data/b.db gone']);
  t.deepEqual(DbStaging.recovered(file, 8), [], 'a commit after them covers them: a log whose truncation was lost is not taken again');
  fs.appendFileSync(file, Buffer.from([0, 0, 0, 40, 0, 0, 0, 1, 9, 9]));
  t.is(DbStaging.recovered(file, 7).length, 3, 'a torn record at the end is left out');
  // Replayed, they rebuild what was staged: the image's page 1, then page 2 over it.
  const again = new DbStaging(file, 7);
  again.replay(DbStaging.recovered(file, 7));
  const p = again.pending.get('data/a.db')!;
  t.deepEqual([p.size, p.pages.get(1)![0], p.pages.get(2)![0]], [2, 1, 2]);
  t.is(again.positions.get('data/b.db'), null);
  again.clear();
  t.is(fs.statSync(file).size, 0);
});
