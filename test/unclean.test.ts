import test from 'ava';
import * as path from 'node:path';
import { followReplayer, makePair, runCli } from './helpers/pair';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.serial('a process killed with SIGKILL: the next one of its journal says so, status says the standby may differ until a verify', async (t) => {
  const pair = await makePair('unclean');
  t.teardown(() => pair.close());
  const f = (n: string) => JSON.stringify(path.join(pair.primary, n));
  const clean = await pair.runApp({ code: `require('fs').writeFileSync(${f('a')}, 'a')` });
  t.is(clean.code, 0, clean.stderr);
  const again = await pair.runApp({ code: `require('fs').writeFileSync(${f('b')}, 'b')` });
  t.is(again.code, 0);
  await pair.drain();
  let st = await runCli(['status', '--nats', pair.server.url]);
  t.notRegex(st.stdout, /MAY DIFFER/, 'two clean endings in a row: nothing to doubt');
  // Killed in the middle of its work: no ending of ours runs.
  const killed = await pair.runApp({ code: `const fs = require('fs'); fs.writeFileSync(${f('c')}, 'c'); fs.writeFile(${f('d')}, 'd', () => {}); process.kill(process.pid, 'SIGKILL');` });
  t.is(killed.signal, 'SIGKILL');
  const next = await pair.runApp({ code: `require('fs').writeFileSync(${f('e')}, 'e'); require(${JSON.stringify(path.join(__dirname, '..', 'index.js'))}).flush(5000)` });
  t.is(next.code, 0, next.stderr);
  await pair.drain();
  st = await runCli(['status', '--nats', pair.server.url]);
  t.regex(st.stdout, /journal "app": STANDBY MAY DIFFER: its process \d+@\S+ ended without flushing \(killed or crashed/);
  // A verify that finds the trees equal settles it.
  t.teardown(followReplayer(pair));
  await sleep(500);
  const v = await runCli(['verify', '--root', `data=${pair.primary}`, '--nats', pair.server.url, '--repair'], { UNDERSTUDY_SPOOL_DIR: pair.spool });
  t.is(v.code, 0, v.stdout + v.stderr);
  st = await runCli(['status', '--nats', pair.server.url]);
  t.notRegex(st.stdout, /MAY DIFFER/);
});
