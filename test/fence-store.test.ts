import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { EntryHead } from '../lib/entry';
import { FenceStore, type Fence } from '../replayer/fence';

const dir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-fences-'));
const head = (s: number): EntryHead => ({ j: 'app', e: 7, s, t: 0, r: 'data', p: 'f' });

test('a fence taken from another standby\'s promotion refuses past it, and is still held after a restart', (t) => {
  const state = dir();
  t.teardown(() => fs.rmSync(state, { recursive: true, force: true }));
  const theirs: Fence = { e: 7, s: 120, at: '2026-12-02T02:40:00.000Z', by: 'host-a', standby: 'a' };
  t.is(new FenceStore(state).adopt('app', theirs), 'new');
  // Durable: a standby restarted without NATS still refuses.
  const again = new FenceStore(state);
  t.is(again.check(head(120)), undefined);
  t.is(again.check(head(121)), 'split brain: journal app was fenced at 7.120 by the promotion of standby a (on host-a) at 2026-12-02T02:40:00.000Z; entry app.7.121 came from the old primary afterwards');
  t.is(again.adopt('app', theirs), 'held');
});

test('a fence held is kept when the state bucket says another: what was refused here stays refused', (t) => {
  const state = dir();
  t.teardown(() => fs.rmSync(state, { recursive: true, force: true }));
  const store = new FenceStore(state);
  const own = store.fence('app', { e: 7, s: 100 }, 'host-b', 'b');
  t.is(store.adopt('app', { e: 7, s: 150, at: '2026-12-02T02:41:00.000Z', by: 'host-c', standby: 'c' }), 'other');
  t.deepEqual(new FenceStore(state).fences.app, own);
  t.truthy(store.check(head(101)));
});

test('a fence of an older version, without a standby name, says the host', (t) => {
  const state = dir();
  t.teardown(() => fs.rmSync(state, { recursive: true, force: true }));
  fs.writeFileSync(path.join(state, 'fence.json'), JSON.stringify({ app: { e: 7, s: 3, at: '2026-11-30T00:00:00.000Z', by: 'old-host' } }));
  t.regex(new FenceStore(state).check(head(4)) ?? '', /by the promotion of old-host at 2026-11-30T00:00:00\.000Z;/);
});
