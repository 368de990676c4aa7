import test from 'ava';
import fs = require('node:fs');
import * as os from 'node:os';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { parseRoots } from '../lib/roots';
import { Locator } from '../agent/locate';
import { Recorder } from '../agent/recorder';
import { install, uninstall } from '../agent/shims/install';
import { MemorySink } from './helpers/memory-sink';

/** The wrappers installed in this test's process over a fresh root, undone at the end. */
function setUp(t: { teardown(fn: () => void): void }): { dir: string; r: Recorder; sink: MemorySink } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-fds-'));
  const sink = new MemorySink();
  const r = new Recorder(sink, new Locator(parseRoots(`data=${dir}`), []));
  install(r);
  t.teardown(() => {
    uninstall();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { dir, r, sink };
}

const payload = Buffer.from('a line of the soak\n');

// On Node 20 a FileHandle's close is a field of each handle, not a prototype method, so the
// wrapper of the prototype's close never ran and every handle opened for writing stayed
// followed: memory (and the walk of each rename or unlink) grew with every open.
test.serial('a FileHandle stops being followed when it closes: 3,000 opened, written and closed leave none behind', async (t) => {
  const { dir, r, sink } = setUp(t);
  const held = await fs.promises.open(path.join(dir, 'held'), 'w');
  t.is(r.fds.open.size, 1, 'a handle open for writing under the root is followed');
  for (let i = 0; i < 3000; i++) {
    const h = await fs.promises.open(path.join(dir, `h${i % 20}`), i % 2 === 0 ? 'w' : 'a');
    await h.write(payload, 0, payload.length, i % 2 === 0 ? 0 : null);
    await (i % 3 === 0 ? h[Symbol.asyncDispose]() : h.close());
  }
  t.is(r.fds.open.size, 1, 'only the handle still open is followed');
  // The one still open is followed as before: a write through it after a rename lands under the new name.
  fs.renameSync(path.join(dir, 'held'), path.join(dir, 'moved'));
  await held.write(payload, 0, payload.length, 0);
  t.like(sink.changes.at(-1), { root: 'data', path: 'moved', op: { op: 'pwrite' } });
  await held.close();
  t.is(r.fds.open.size, 0);
  t.is(sink.changes.filter((e) => e.op.op === 'pwrite' || e.op.op === 'append').length, 3001, 'every write was journaled');
});

test.serial('descriptors stop being followed when they close, in every shape', async (t) => {
  const { dir, r } = setUp(t);
  for (let i = 0; i < 500; i++) {
    const f = path.join(dir, `f${i % 10}`);
    const fd = fs.openSync(f, 'w');
    fs.writeSync(fd, payload);
    fs.closeSync(fd);
    await new Promise<void>((resolve, reject) => fs.open(f, 'a', (err, d) => (err ? reject(err) : fs.write(d, payload, () => fs.close(d, () => resolve())))));
    await new Promise<void>((resolve, reject) => fs.createWriteStream(f).on('error', reject).end(payload, resolve));
  }
  t.is(r.fds.open.size, 0);
});

test.serial('a FileHandle dropped without close stops being followed once it is collected', async (t) => {
  const { dir, r } = setUp(t);
  // The collector, reached the way Node allows without a command-line flag.
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  // Node closes such handles itself when it collects them, with a warning for each: expected here, not printed.
  const printers = process.listeners('warning');
  process.removeAllListeners('warning');
  t.teardown(() => {
    for (const p of printers) process.on('warning', p);
  });
  await (async () => {
    for (let i = 0; i < 20; i++) {
      const h = await fs.promises.open(path.join(dir, `u${i % 10}`), 'w');
      await h.write(payload, 0, payload.length, 0);
    }
  })();
  t.is(r.fds.open.size, 20);
  // Finalizers run on later turns of the event loop after a collection: a bounded number of rounds, not a time.
  for (let round = 0; round < 100 && r.fds.open.size > 0; round++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  t.is(r.fds.open.size, 0);
});
