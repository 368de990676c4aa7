import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makePair, REPO, runCli, type Pair } from './helpers/pair';
import { streamEntries } from './helpers/stream-entries';
import { liveJournals, readNumber, startApp, until } from './helpers/agent-apps';
import { comparePosition, type Entry, type TxOp } from '../lib/entry';

/** The app's files: one transaction resolved, one thrown, one left waiting while a call outside it runs. */
const body = (dir: string): string => `
  const r = await transaction(async () => {
    fs.writeFileSync(${dir} + '/t1', 'x');
    await fs.promises.writeFile(${dir} + '/t2', 'y');
    await new Promise((res, rej) => fs.appendFile(${dir} + '/t3', 'z', (e) => (e ? rej(e) : res())));
    process.env.TX_KEY = 'v';
    const inner = await transaction(async () => { fs.writeFileSync(${dir} + '/nested', 'n'); return 'inner'; });
    return inner + 42;
  });
  console.log('result ' + r);
  const err = new Error('boom');
  const caught = await transaction(async () => { fs.writeFileSync(${dir} + '/t4', 'w'); throw err; }).catch((e) => e);
  console.log('same error ' + (caught === err));
  let release;
  const held = new Promise((res) => (release = res));
  const tx = transaction(async () => {
    fs.writeFileSync(${dir} + '/in1', '1');
    await held;
    fs.writeFileSync(${dir} + '/in2', '2');
  });
  await new Promise((res) => setTimeout(res, 20));
  fs.writeFileSync(${dir} + '/outside', 'o');
  release();
  await tx;
`;

const CJS = `
const fs = require('fs');
const { transaction } = require(${JSON.stringify(REPO)});
(async () => {${body('process.env.DATA')}})();
`;

const ESM = `
import fs from 'node:fs';
import { transaction } from 'understudy';
${body('process.env.DATA')}
`;

interface Tx { id: string; begin: Entry; end?: Entry }

/** The app journal's transactions in order, and its entries of files and config. */
function split(entries: Entry[]): { txs: Tx[]; changes: Entry[] } {
  const txs: Tx[] = [];
  const changes: Entry[] = [];
  for (const e of entries) {
    const h = e.header;
    if (h.op === 'tx') {
      if (h.ev === 'begin') txs.push({ id: h.id, begin: e });
      else {
        const tx = txs.find((x) => x.id === (h as TxOp).id);
        if (tx !== undefined) tx.end = e;
      }
    } else if (h.op !== 'checkpoint') {
      changes.push(e);
    }
  }
  return { txs, changes };
}

/** Checks what the app journaled: begin/end around every entry made inside, x on each, nothing on the one outside. */
function checkJournal(t: import('ava').ExecutionContext, entries: Entry[]): void {
  const { txs, changes } = split(entries);
  t.is(txs.length, 3, 'the nested transaction joined the outer one: three begins');
  t.is(new Set(txs.map((x) => x.id)).size, 3);
  for (const tx of txs) t.truthy(tx.end, `transaction ${tx.id} has its end (resolved or thrown)`);
  const of = (p: string): Entry | undefined => changes.find((e) => e.header.p === p || (e.header.op === 'config' && e.header.key[0] === p));
  const inTx = (p: string, tx: Tx): void => {
    const e = of(p);
    t.is(e?.header.x, tx.id, `${p} carries x = ${tx.id}`);
    if (e !== undefined && tx.end !== undefined) {
      t.true(comparePosition(tx.begin.header, e.header) < 0 && comparePosition(e.header, tx.end.header) < 0, `${p} is between its transaction's begin and end`);
    }
  };
  for (const p of ['t1', 't2', 't3', 'TX_KEY', 'nested']) inTx(p, txs[0]);
  inTx('t4', txs[1]);
  inTx('in1', txs[2]);
  inTx('in2', txs[2]);
  const outside = of('outside');
  t.truthy(outside);
  t.is(outside?.header.x, undefined, 'a call outside every transaction, made while one is open, is untagged');
  for (const e of entries) if (e.header.op === 'tx') t.is(e.header.x, undefined);
}

async function runAndRead(pair: Pair, file: string, code: string): Promise<{ stdout: string; entries: Entry[] }> {
  fs.writeFileSync(path.join(pair.dir, file), code);
  const r = await pair.runApp({ file: path.join(pair.dir, file), env: { DATA: pair.primary } });
  if (r.code !== 0) throw new Error(`app failed: ${r.stderr}`);
  const all = await streamEntries(pair.server.url);
  return { stdout: r.stdout, entries: all.get('app') ?? [] };
}

test.serial('transaction(): begin and end around it, x on every entry inside (sync, callback, promise, config), on resolve and on throw, nested joined, calls outside untagged', async (t) => {
  const pair = await makePair('tx-cjs');
  t.teardown(() => pair.close());
  const { stdout, entries } = await runAndRead(pair, 'tx.js', CJS);
  t.regex(stdout, /result inner42/);
  t.regex(stdout, /same error true/);
  checkJournal(t, entries);
});

test.serial('transaction() from ESM: import { transaction } from "understudy"', async (t) => {
  const pair = await makePair('tx-esm');
  t.teardown(() => pair.close());
  fs.mkdirSync(path.join(pair.dir, 'node_modules'));
  fs.symlinkSync(REPO, path.join(pair.dir, 'node_modules', 'understudy'));
  const { stdout, entries } = await runAndRead(pair, 'tx.mjs', ESM);
  t.regex(stdout, /result inner42/);
  t.regex(stdout, /same error true/);
  checkJournal(t, entries);
});

test.serial('without the agent transaction() just runs the function, result and error unchanged', async (t) => {
  const pair = await makePair('tx-none');
  t.teardown(() => pair.close());
  const file = path.join(pair.dir, 'tx.js');
  fs.writeFileSync(file, CJS);
  const r = await pair.runApp({ file, env: { DATA: pair.primary }, withAgent: false });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /result inner42/);
  t.regex(r.stdout, /same error true/);
  t.is(fs.readFileSync(path.join(pair.primary, 'in2'), 'utf8'), '2');
});

test.serial('an orderly exit with a transaction open journals its end and says so', async (t) => {
  const pair = await makePair('tx-exit');
  t.teardown(() => pair.close());
  const r = await pair.runApp({ code: `
    const fs = require('fs');
    const { transaction } = require(${JSON.stringify(REPO)});
    void transaction(async () => { fs.writeFileSync(process.env.DATA + '/half', 'h'); await new Promise(() => setTimeout(() => {}, 60000)); });
    setTimeout(() => process.exit(0), 50);
  `, env: { DATA: pair.primary } });
  t.is(r.code, 0);
  t.regex(r.stderr, /transaction\(s\) open/);
  const { txs, changes } = split((await streamEntries(pair.server.url)).get('app') ?? []);
  t.is(txs.length, 1);
  t.truthy(txs[0].end);
  t.is(changes.find((e) => e.header.p === 'half')?.header.x, txs[0].id);
});

/** Transactions back to back, each writing p = n, then after a pause q = n: p === q holds outside them. */
const PAIRS = `
const fs = require('fs');
const { transaction } = require(${JSON.stringify(REPO)});
const dir = process.env.DATA;
let n = 0;
(async () => {
  while (!fs.existsSync(dir + '/../stop')) {
    n++;
    await transaction(async () => {
      fs.writeFileSync(dir + '/p', String(n));
      await new Promise((r) => setTimeout(r, 15));
      await fs.promises.writeFile(dir + '/q', String(n));
    });
    await new Promise((r) => setImmediate(r));
  }
})();
`;

test.serial('a checkpoint never cuts a transaction: its prepare waits until none is open', async (t) => {
  const pair = await makePair('tx-cp');
  t.teardown(() => pair.close());
  startApp(pair, PAIRS, t);
  await until('transactions running, heartbeat in', async () => readNumber(path.join(pair.primary, 'q')) > 5 && (await liveJournals(pair)).length === 1);
  for (const name of ['x1', 'x2', 'x3']) {
    const r = await runCli(['checkpoint', name, '--nats', pair.server.url]);
    t.is(r.code, 0, r.stderr);
  }
  fs.writeFileSync(path.join(pair.dir, 'stop'), '');
  const entries = (await streamEntries(pair.server.url)).get('app') ?? [];
  let open = 0;
  let seen = 0;
  const files = new Map<string, string>();
  for (const e of entries) {
    const h = e.header;
    if (h.op === 'tx') open += h.ev === 'begin' ? 1 : -1;
    else if (h.op === 'put') files.set(h.p, e.data.toString());
    else if (h.op === 'checkpoint') {
      seen++;
      t.is(open, 0, `no transaction is open at checkpoint ${h.name}`);
      t.is(files.get('p'), files.get('q'), `p === q at checkpoint ${h.name}`);
    }
  }
  t.is(seen, 3);
});
