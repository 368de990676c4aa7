import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLI, makePair, runCli, type Pair } from './helpers/pair';
import { dumpDom, requireChromium, rowOf, textOf } from './helpers/chromium';
import { Quarantine } from '../replayer/quarantine';
import { History } from '../replayer/status/history';
import type { StandbyRow, StatusReport } from '../replayer/status/collect';
import type { PageData } from '../replayer/status/page-data';
import { PAGE_CSS, pageHtml } from '../replayer/status/page-html';
import { PAGE_SCRIPT } from '../replayer/status/page-script';

/** A following `understudy replay --http-port 0` of the pair, its page's URL once it says where it listens, and its end. */
interface Running {
  child: ChildProcess;
  url: string;
  stderr: () => string;
  stop(): Promise<number | null>;
}

async function startReplay(pair: Pair, extra: string[] = [], state = pair.state, root = pair.standby): Promise<Running> {
  const child = spawn(process.execPath, [CLI, 'replay', '--root', `data=${root}`, '--state', state, '--http-port', '0', ...extra], {
    env: { ...process.env, UNDERSTUDY_NATS_URL: pair.server.url }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const ended = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /status page on (http:\S+)/.exec(stderr);
      if (m !== null) resolve(m[1]);
    });
    void ended.then((code) => reject(new Error(`replay ended with ${code} before serving its page:\n${stderr}`)));
  });
  return {
    child, url, stderr: () => stderr,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      return ended;
    },
  };
}

async function getJson(url: string): Promise<PageData> {
  const res = await fetch(new URL('status.json', url));
  if (!res.ok) throw new Error(`status.json answered ${res.status}`);
  return (await res.json()) as PageData;
}

/** Asks until `ok` holds of the page's data (the replayer applies and samples on its own time). */
async function until(url: string, ok: (d: PageData) => boolean): Promise<PageData> {
  for (let i = 0; ; i++) {
    const d = await getJson(url).catch(() => undefined);
    if (d !== undefined && ok(d)) return d;
    if (i > 300) throw new Error(`the page's data never got there: ${JSON.stringify(d)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A proxy in front of the page that lets the first `passing` requests for status.json through,
 * then calls `stop` and holds every later request until it has resolved, then forwards it (to a
 * replayer that is gone: the browser sees the connection fail). The page's clock stands still
 * while its request is held, so what it says afterwards follows from the replayer's end alone.
 */
async function stoppingProxy(target: string, passing: number, stop: () => Promise<unknown>): Promise<{ url: string; close(): void }> {
  let asked = 0;
  let stopped: Promise<unknown> | undefined;
  const server = http.createServer((req, res) => {
    const n = req.url?.startsWith('/status.json') === true ? ++asked : 0;
    const forward = (): void => {
      const up = http.request(new URL(req.url ?? '/', target), { method: req.method, headers: req.headers, agent: false }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
        r.on('end', () => {
          if (n === passing) stopped = stop();
        });
      });
      up.on('error', () => req.socket.destroy());
      up.end();
    };
    if (n <= passing) return forward();
    void (async () => {
      while (stopped === undefined) await new Promise((r) => setTimeout(r, 20));
      await stopped;
      forward();
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/`,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

test.serial('the status page in Chromium shows the journal, the standby, the stream and a lag chart, then says when the replayer stopped answering', async (t) => {
  requireChromium();
  const pair = await makePair('status-page');
  t.teardown(() => pair.close());
  t.is((await pair.runApp({ code: `for (let i = 0; i < 5; i++) require('fs').writeFileSync(${JSON.stringify(pair.primary)} + '/f' + i, 'x' + i);` })).code, 0);
  const replay = await startReplay(pair, ['--standby', 'sb1']);
  t.teardown(() => void replay.stop());
  const ready = await until(replay.url, (d) => d.journals.some((j) => j.journal === 'app' && j.applied_seq === 5) && d.standbys.some((s) => s.name === 'sb1') && d.history.length >= 2);
  const journal = ready.journals.find((j) => j.journal === 'app')!;

  // What /status.json serves is what `understudy status --json` prints, and the page's own parts.
  const cli = await runCli(['status', '--json'], { UNDERSTUDY_NATS_URL: pair.server.url });
  t.is(cli.code, 0, cli.stderr);
  const printed = JSON.parse(cli.stdout) as StatusReport;
  const served = await getJson(replay.url);
  t.deepEqual(Object.keys(served).filter((k) => k in printed), Object.keys(printed));
  t.deepEqual(Object.keys(served).filter((k) => !(k in printed)).sort(), ['fences', 'history', 'quarantine', 'sampled_at', 'this_standby']);
  const stable = (r: StatusReport) => ({
    journals: r.journals.map((j) => [j.journal, j.mode, j.agent_last_seq, j.stream_last_seq, j.applied_seq, j.lag_entries]),
    standbys: r.standbys.map((s) => s.name).sort(), stream: { ...r.stream }, baselines: r.baselines, verifies: r.verifies, doubts: r.doubts, watchers: r.watchers,
  });
  t.deepEqual(stable(served), stable(printed));
  t.is(served.this_standby, 'sb1');
  t.deepEqual(served.quarantine, { count: 0, last: [] });
  t.deepEqual(served.fences, []);
  const sample = served.history[served.history.length - 1];
  t.is(typeof sample.t, 'number');
  t.deepEqual(sample.journals.app, { lag_entries: 0, lag_seconds: 0 });
  t.is(sample.standbys.sb1?.lag_entries, 0);
  t.is(sample.stream_bytes, served.stream.bytes);
  t.true(served.history.every((s, i) => i === 0 || s.t > served.history[i - 1].t));

  // An entry set aside under --state (where the replayer's Quarantine keeps them) is counted, with its reason.
  new Quarantine(path.join(pair.state, 'quarantine')).put(3, 'j', new Uint8Array([1]), 'bad signature <b>from nowhere</b>');
  await until(replay.url, (d) => d.quarantine.count === 1);

  // The page, after its script ran: the data drawn, and no word of trouble.
  const html = await dumpDom(replay.url, 3000);
  t.regex(html, /<div id="live" class="live" data-state="answering">/);
  const row = rowOf(html, 'journal', 'app');
  t.truthy(row, html);
  t.is(textOf(row!, 'data-field="journal"'), 'app');
  t.is(textOf(row!, 'data-field="applied_seq"'), String(journal.applied_seq));
  t.is(textOf(row!, 'data-field="lag_entries"'), '0');
  const standby = rowOf(html, 'standby', 'sb1');
  t.truthy(standby, html);
  t.regex(standby!, /sb1 <span class="badge me">this page<\/span>/);
  const state = (served.standbys.find((s) => s.name === 'sb1') as { state?: string }).state;
  t.is(textOf(standby!, 'data-field="state"'), state ?? '-');
  t.regex(html, new RegExp(`<div id="stream-fill" class="fill[^"]*" [^>]*data-pct="${served.stream.used_pct}"`));
  t.regex(textOf(html, 'id="stream-text"') ?? '', /^[\d.]+ % full · [\d.]+ (B|KiB) of 8\.0 GiB$/);
  const line = /<svg id="chart-journals"[\s\S]*?<polyline points="([^"]+)"[^>]*data-name="app" data-points="(\d+)"/.exec(html);
  t.truthy(line, html);
  t.true(Number(line![2]) >= 2);
  t.is(line![1].split(' ').length, Number(line![2]));
  t.regex(html, /<svg id="chart-standbys"[\s\S]*?<polyline [^>]*data-name="sb1"/);
  t.notRegex(html, /stopped answering|NOT ANSWERING/);
  t.is(textOf(html, 'id="quarantine-card"><h2>Quarantined</h2><div class="body"><div'), '1');
  // A reason is shown as text: what came from the network never becomes markup.
  t.regex(html, /<li title="[^"]+000000000003\.entry"><code>000000000003\.entry<\/code> <span[^>]*>\d+ s ago<\/span><div>bad signature &lt;b&gt;from nowhere&lt;\/b&gt;<\/div><\/li>/);

  // The replayer stops while the page is open: the page says so, and keeps what it last showed.
  const proxy = await stoppingProxy(replay.url, 2, () => replay.stop());
  t.teardown(() => proxy.close());
  const after = await dumpDom(proxy.url, 10_000);
  t.is(await replay.stop(), 0, replay.stderr());
  t.regex(after, /<div id="live" class="live" data-state="not-answering">/);
  t.regex(textOf(after, '<span id="live-text"') ?? '', /^NOT ANSWERING$/);
  t.regex(textOf(after, '<div id="banner"') ?? '', /^The replayer stopped answering \([\d:]+: it cannot be reached\)\. Its last answer came at [\d:]+; what is shown is from then\./);
  t.regex(after, /<body [^>]*class="stale"/);
  t.is(textOf(rowOf(after, 'journal', 'app') ?? '', 'data-field="applied_seq"'), String(journal.applied_seq));
});

test.serial('--http-host defaults to loopback: the page is bound to 127.0.0.1 alone; --http-host binds another address', async (t) => {
  const pair = await makePair('status-page-host');
  t.teardown(() => pair.close());
  const replay = await startReplay(pair);
  t.teardown(() => void replay.stop());
  const u = new URL(replay.url);
  t.is(u.hostname, '127.0.0.1');
  t.is((await fetch(new URL('status.json', replay.url))).status, 200);
  // Linux routes all of 127/8 to loopback: another of its addresses finds nobody on that port.
  t.is(await connects('127.0.0.2', Number(u.port)), 'ECONNREFUSED');
  // A page elsewhere that had its name resolve to 127.0.0.1 (DNS rebinding) reads nothing.
  t.is(await statusWithHost(replay.url, 'evil.example:' + u.port), 421);
  for (const name of ['localhost', '127.0.0.1', '[::1]']) t.is(await statusWithHost(replay.url, `${name}:9000`), 200, name);
  t.is(await replay.stop(), 0);

  const other = await startReplay(pair, ['--http-host', '127.0.0.2']);
  t.teardown(() => void other.stop());
  const o = new URL(other.url);
  t.is(o.hostname, '127.0.0.2');
  t.is(await connects('127.0.0.2', Number(o.port)), 'connected');
  t.is(await connects('127.0.0.1', Number(o.port)), 'ECONNREFUSED');
  const page = await fetch(other.url);
  t.is(page.status, 200);
  t.regex(page.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self'/);
  t.regex(await page.text(), /<script src="\/page\.js" defer><\/script>/);
  for (const asset of ['page.js', 'page.css']) t.is((await fetch(new URL(asset, other.url))).status, 200, asset);
  t.is((await fetch(new URL('nothing', other.url))).status, 404);
  t.is(await other.stop(), 0);
});

function statusWithHost(url: string, host: string): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    http.get(new URL('status.json', url), { headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode);
    }).on('error', reject);
  });
}

function connects(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port }, () => {
      s.destroy();
      resolve('connected');
    });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

test('bad --http-port and --http-host values are refused with an error naming them', async (t) => {
  const state = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-status-page-flags-'));
  t.teardown(() => fs.rmSync(state, { recursive: true, force: true }));
  const run = (...flags: string[]) => runCli(['replay', '--root', `data=${path.join(state, 'data')}`, '--state', state, ...flags], { UNDERSTUDY_NATS_URL: 'nats://127.0.0.1:1' });
  for (const bad of ['abc', '-1', '65536', '1.5', '', '8080x']) {
    const r = await run(`--http-port=${bad}`);
    t.is(r.code, 2, `${bad}: ${r.stderr}`);
    t.true(r.stderr.includes(`--http-port ${bad} is not a port number (0-65535)`), r.stderr);
  }
  const host = await run('--http-host', '127.0.0.1');
  t.is(host.code, 2, host.stderr);
  t.regex(host.stderr, /--http-host needs --http-port/);
});

test.serial('a port already in use is said as the status page\'s, naming the flags', async (t) => {
  const pair = await makePair('status-page-busy');
  t.teardown(() => pair.close());
  const busy = net.createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', () => resolve()));
  t.teardown(() => busy.close());
  const port = (busy.address() as net.AddressInfo).port;
  const r = await runCli(['replay', '--root', `data=${pair.standby}`, '--state', pair.state, '--http-port', String(port)], { UNDERSTUDY_NATS_URL: pair.server.url });
  t.is(r.code, 2, r.stderr);
  t.true(r.stderr.includes(`the status page cannot listen on 127.0.0.1:${port} (--http-host, --http-port): listen EADDRINUSE`), r.stderr);
});

test('the quarantine lists its count and the newest entries first, with their reasons', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-status-page-q-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const q = new Quarantine(path.join(dir, 'quarantine'));
  t.deepEqual(await q.list(2), { count: 0, last: [] });
  q.put(7, 'j', new Uint8Array([1]), 'bad signature');
  q.put(12, 'j', new Uint8Array([2]), 'checksum mismatch', 1);
  q.put(30, 'j', new Uint8Array([3]), 'split brain');
  fs.writeFileSync(path.join(q.dir, '000000000040.json'), '{ torn');
  const l = await q.list(3);
  t.is(l.count, 4);
  t.deepEqual(l.last.map((x) => [path.basename(x.file), x.reason.replace(/: .*/, '')]), [
    ['000000000040.entry', '(its record cannot be read'], ['000000000030.entry', 'split brain'], ['000000000012.1.entry', 'checksum mismatch'],
  ]);
  t.true(l.last.slice(1).every((x) => typeof x.at === 'string' && fs.existsSync(x.file)));
});

test('the history keeps the window\'s samples, and each standby\'s lag', (t) => {
  const h = new History(10_000);
  const report = (standbys: Partial<StandbyRow>[]): StatusReport => ({
    journals: [{ journal: 'app', lag_entries: 3, lag_seconds: 1.5 }], standbys: standbys as StandbyRow[],
    stream: { name: 'S', messages: 4, bytes: 400, max_bytes: 1000, used_pct: 40, first_seq: 1, last_seq: 10 }, baselines: [], verifies: [], doubts: [], watchers: [],
  });
  h.add(report([{ name: 'old', lag_entries: 4, lag_bytes: 300 }]), 1000);
  h.add(report([{ name: 'new', lag_entries: 2, lag_bytes: 200 }]), 6000);
  h.add(report([]), 12_000);
  t.deepEqual(h.samples().map((s) => s.t), [6000, 12_000]);
  t.deepEqual(h.samples()[0], { t: 6000, journals: { app: { lag_entries: 3, lag_seconds: 1.5 } }, standbys: { new: { lag_entries: 2, lag_bytes: 200 } }, stream_bytes: 400 });
});

/**
 * Serves the page's own HTML, script and style with `data` as /status.json: what the page
 * draws for states a live pair rarely shows at once (a lost standby recovering, a failing
 * disk, a refusing stream). The data has the shape of StatusReport with StandbyRow rows.
 */
async function servePage(data: () => { code: number; body: unknown }): Promise<{ url: string; close(): void }> {
  const html = pageHtml({ stream: 'UNDERSTUDY', standby: 'b1', refreshMs: 2000, answerTimeoutMs: 5000 });
  const server = http.createServer((req, res) => {
    if (req.url === '/') return res.writeHead(200, { 'content-type': 'text/html' }).end(html);
    if (req.url === '/page.js') return res.writeHead(200, { 'content-type': 'text/javascript' }).end(PAGE_SCRIPT);
    if (req.url === '/page.css') return res.writeHead(200, { 'content-type': 'text/css' }).end(PAGE_CSS);
    const d = data();
    res.writeHead(d.code, { 'content-type': 'application/json' }).end(JSON.stringify(d.body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/`, close: () => { server.closeAllConnections(); server.close(); } };
}

test.serial('the page draws every standby state and each word of trouble status uses, from rows of StandbyRow\'s shape', async (t) => {
  requireChromium();
  const now = Date.now();
  const iso = (ago: number) => new Date(now - ago).toISOString();
  const row = (name: string, state: string, extra: Record<string, unknown> = {}) => ({
    name, host: 'h', state, committed_seq: 90, lag_entries: 10, lag_bytes: 25, lag_seconds: 2, safe_bytes: 75, max_lag_bytes: 100, max_lag_seconds: 60, last_active: iso(1000), ...extra,
  });
  const body = {
    journals: [{ journal: 'app', mode: 'sync', agent_last_seq: 12, agent_shipped_seq: 11, stream_last_seq: 11, applied_seq: 10, lag_entries: 2, lag_seconds: 1, heartbeat_age_s: 0.5, dropped: 3,
      standby_failing: 'EIO on fsync', stream_refuses: { reason: 'maximum bytes exceeded', since: iso(5000) }, differs: 'entries lost before shipping', may_differ: 'its process 42 ended without flushing' }],
    standbys: [row('b1', 'streaming', { lag_entries: 0, checkpoints: {
      last_reached: { name: 'nightly', time: iso(90_000), reached_at: iso(80_000), bytes: 2048 }, kept: 2, kept_bytes: 4096,
      pending: [{ name: 'hourly', time: iso(10_000), waiting_for: ['web.2'] }], failed: [{ name: 'broken', time: iso(50_000), why: 'journal web.1 passed its cut without its entry' }],
    } }), row('b2', 'catching up'), row('b3', 'stopped', { inactive_since: iso(60_000) }),
      row('b4', 'lost', { safe_bytes: 0, lost: { since: iso(30_000), reason: 'it held back more than 100 B', by: 'b1' }, rebase: { state: 'running', step: 'baseline: 10 of 50 objects', requested: iso(20_000), by: 'app@h' } })],
    stream: { name: 'UNDERSTUDY', messages: 100, bytes: 850, max_bytes: 1000, used_pct: 85, last_seq: 100 },
    baselines: [{ name: 'nightly', state: 'failed', started: now - 9000, roots: ['data'], objects: 5, bytes: 10, error: 'timed out' }],
    verifies: [{ name: 'hourly', time: now - 4000, roots: ['data'], equal: false, differences: 2, repaired: 0, unsettled: 0 }],
    doubts: [{ standby: 'b2', count: 1, objects: [{ root: 'data', path: 'a.txt', why: 'two journals', at: now }], time: now }],
    watchers: [], fences: [{ journal: 'app', e: 3, s: 10, at: iso(2000), by: 'b1' }],
    quarantine: { count: 0, last: [] }, this_standby: 'b1', sampled_at: iso(0),
    history: [0, 1, 2].map((i) => ({ t: now - 4000 + i * 2000, journals: { app: { lag_entries: i, lag_seconds: i } }, standbys: { b1: { lag_entries: 0, lag_bytes: 0 }, b4: { lag_entries: 10 * i, lag_bytes: 25 } }, stream_bytes: 850 })),
  };
  let failing = false;
  const page = await servePage(() => (failing ? { code: 503, body: { error: 'Permissions Violation for Publish to "$JS.API.DIRECT.GET.KV_UNDERSTUDY_STATE.x"' } } : { code: 200, body }));
  t.teardown(() => page.close());
  const html = await dumpDom(page.url, 3000);
  const states = Object.fromEntries(['b1', 'b2', 'b3', 'b4'].map((n) => [n, /data-field="state"><span class="badge (\w+)">([^<]+)</.exec(rowOf(html, 'standby', n) ?? '')?.slice(1)]));
  t.deepEqual(states, { b1: ['ok', 'streaming'], b2: ['info', 'catching up'], b3: ['off', 'stopped'], b4: ['bad', 'lost'] });
  t.regex(rowOf(html, 'standby', 'b2') ?? '', />75 B more of 100 B</);
  const b1 = rowOf(html, 'standby', 'b1') ?? '';
  t.regex(b1, /<span class="badge ok">checkpoint nightly<\/span>reached <span[^>]*>1 min ago<\/span> · 2 kept, 4.0 KiB/);
  t.regex(b1, /<span class="badge info">checkpoint hourly pending<\/span>waiting for web\.2/);
  t.regex(b1, /<span class="badge bad">checkpoint broken failed<\/span>journal web\.1 passed its cut without its entry/);
  t.regex(rowOf(html, 'standby', 'b3') ?? '', /inactive since <span[^>]*>1 min ago</);
  t.regex(rowOf(html, 'standby', 'b4') ?? '', /<span class="badge bad">LOST<\/span>since [\d:]+: it held back more than 100 B/);
  t.regex(rowOf(html, 'standby', 'b4') ?? '', /<span class="badge info">recovery running<\/span>baseline: 10 of 50 objects/);
  const marks = [...(rowOf(html, 'journal', 'app') ?? '').matchAll(/<span class="badge (\w+)" title="[^"]*">([^<]+)</g)].map((m) => `${m[2]}:${m[1]}`);
  t.deepEqual(marks, ['STANDBY FAILING:bad', 'THE STREAM REFUSES:bad', 'differs:bad', 'MAY DIFFER:warn', '3 dropped:bad']);
  const alerts = [...html.matchAll(/<li class="(bad|warn)">([\s\S]*?)<\/li>/g)].map((m) => `${m[1]} ${m[2].replace(/<[^>]+>/g, '')}`);
  t.deepEqual(alerts.map((a) => a.slice(0, 60)), [
    'bad journal app: STANDBY FAILING: its disk failed (EIO on fsync); n',
    'bad journal app: THE STREAM REFUSES ITS ENTRIES since ' + iso(5000).slice(0, 21),
    'bad journal app: standby differs: entries lost before shipping',
    'warn journal app: STANDBY MAY DIFFER: its process 42 ended withou',
    'warn STANDBY b2 MAY DIFFER from the primary: 1 object(s) it canno',
    'bad standby b4: LOST since ' + iso(30_000) + ': it held',
    'warn stream UNDERSTUDY: 85 % full: when full it refuses entries and',
  ].map((a) => a.slice(0, 60)));
  t.regex(html, /<div id="stream-fill" class="fill warn" data-pct="85" style="width: 85%;">/);
  t.regex(html, /id="baseline-card"><h2>Last baseline<\/h2><div class="body"><div><span class="badge bad">failed<\/span><span class="name">nightly<\/span><\/div><div>5 objects, 10 B<\/div>.*?<div class="muted">timed out<\/div>/);
  t.regex(html, /<span class="badge bad">2 difference\(s\)<\/span>/);
  t.regex(html, /<div>journal app fenced at 3\.10<\/div>/);
  t.regex(html, /<svg id="chart-standbys"[\s\S]*?<polyline points="[^"]+" stroke="[^"]+" data-name="b4" data-points="3">/);

  // It answers, but cannot read NATS: said as that, not as the replayer gone.
  failing = true;
  const degraded = await dumpDom(page.url, 3000);
  t.regex(degraded, /<div id="live" class="live" data-state="degraded">/);
  t.regex(textOf(degraded, '<div id="banner"') ?? '', /^The replayer answers, but cannot read the stream's status: Permissions Violation for Publish to "\$JS\.API\.DIRECT\.GET\.KV_UNDERSTUDY_STATE\.x"$/);
  t.notRegex(degraded, /NOT ANSWERING/);
});
