import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { claimJournal, isSlotOf, slotName } from '../agent/journal-name';
import { msgId, validJournalName } from '../lib/subjects';
import { stateKey } from '../lib/state-bucket';

test('slot names are valid journal names, also under the longest base', (t) => {
  const long = 'a'.repeat(128);
  for (const base of ['app', long]) {
    for (const name of [slotName(base, 'process', 0), slotName(base, 'process', 1023), slotName(base, 'thread', 1), slotName(slotName(base, 'process', 7), 'thread', 12)]) {
      t.true(validJournalName(name), name);
      t.true(name.length <= 128);
      // Nats-Msg-Id splits at dots and KV keys allow no spaces: a name must have neither.
      t.is(msgId(name, 1, 2).split('.').length, 3);
      t.regex(stateKey('agent', name), /^[-/_=.a-zA-Z0-9]+$/);
    }
  }
  t.is(slotName('app', 'process', 0), 'app');
  t.is(slotName('app', 'process', 2), 'app-2');
  t.is(slotName('app-2', 'thread', 1), 'app-2-t1');
});

test('the slots of a base are its processes\' and threads\' journals, and no other base\'s', (t) => {
  for (const n of ['app', 'app-1', 'app-12', 'app-t1', 'app-3-t2', 'app-3-t2-t1']) t.true(isSlotOf('app', n), n);
  for (const n of ['ap', 'apple', 'app-', 'app-x', 'app_1', 'app-1a', 'app-t']) t.false(isSlotOf('app', n), n);
});

test('a claim takes the first slot no live process holds', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-slots-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const a = claimJournal(dir, 'app', 'process', {});
  const b = claimJournal(dir, 'app', 'process', {});
  const c = claimJournal(dir, 'app', 'process', {});
  t.deepEqual([a, b, c].map((x) => x.journal.name), ['app', 'app-1', 'app-2']);
  b.journal.close();
  t.is(claimJournal(dir, 'app', 'process', {}).journal.name, 'app-1', 'a slot let go is taken again first');
  t.is(claimJournal(dir, 'app-1', 'thread', {}).journal.name, 'app-1-t1');
});
