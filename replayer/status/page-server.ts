import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NatsConnection } from '@nats-io/transport-node';
import { DEFAULTS } from '../../lib/settings';
import { SettingsError } from '../../lib/errors';
import * as path from 'node:path';
import { Quarantine } from '../quarantine';
import { PAGE_CSS, pageHtml } from './page-html';
import { PAGE_SCRIPT } from './page-script';
import { StatusSampler } from './page-data';

export interface StatusPageOptions {
  port: number;
  host: string;
  nc: NatsConnection;
  stream: string;
  /** Only this journal (replay --name). */
  journal?: string;
  /** The replayer's --state: its quarantine is shown. */
  stateDir: string;
  standby: string;
}

/** A running status page: where it listens, and how to stop it. */
export interface StatusPage {
  /** host:port it is bound to (the port chosen when 0 was asked). */
  address: AddressInfo;
  url: string;
  close(): Promise<void>;
}

// The page is ours alone: nothing is fetched from elsewhere, nothing is framed, nothing kept.
const HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
};

/** Serves the live status page (GET /, /page.js, /page.css) and its data (GET /status.json); resolves once listening. */
export async function serveStatusPage(o: StatusPageOptions): Promise<StatusPage> {
  const s = DEFAULTS.statusPage;
  const sampler = new StatusSampler({
    nc: o.nc, stream: o.stream, journal: o.journal, quarantine: new Quarantine(path.join(o.stateDir, 'quarantine')),
    quarantineListed: s.quarantineListed, standby: o.standby, everyMs: s.sampleEveryMs, historyMs: s.historyMs,
  });
  const html = pageHtml({ stream: o.stream, standby: o.standby, refreshMs: s.refreshMs, answerTimeoutMs: s.answerTimeoutMs });
  const send = (res: http.ServerResponse, type: string, body: string, code = 200): void => {
    res.writeHead(code, { ...HEADERS, 'content-type': type }).end(body);
  };
  const loopback = isLoopback(o.host);
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    // On loopback, a Host that is not one of its names is a web page elsewhere that had its own
    // name resolve here (DNS rebinding) to read this one: refused. Elsewhere the front end decides.
    if (loopback && !isLoopback(hostName(req.headers.host))) return send(res, 'text/plain; charset=utf-8', 'this page answers to localhost only\n', 421);
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 'text/plain; charset=utf-8', 'only GET\n', 405);
    if (url === '/') return send(res, 'text/html; charset=utf-8', html);
    if (url === '/page.js') return send(res, 'text/javascript; charset=utf-8', PAGE_SCRIPT);
    if (url === '/page.css') return send(res, 'text/css; charset=utf-8', PAGE_CSS);
    if (url !== '/status.json') return send(res, 'text/plain; charset=utf-8', 'not found\n', 404);
    sampler.current().then((d) => {
      send(res, 'application/json', JSON.stringify(d), 'error' in d ? 503 : 200);
    }, (err: Error) => send(res, 'application/json', JSON.stringify({ error: err.message }), 500));
  });
  await new Promise<void>((resolve, reject) => {
    // A port in use or an address not of this host is the operator's to change: said as such.
    server.once('error', (err) => reject(new SettingsError(`the status page cannot listen on ${o.host}:${o.port} (--http-host, --http-port): ${err.message}`, { cause: err })));
    server.listen(o.port, o.host, () => resolve());
  });
  sampler.start();
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    address,
    url: `http://${host}:${address.port}/`,
    async close() {
      // The page's fetches keep their connections alive: closing only the listener would wait for them.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await sampler.stop();
      await closed;
    },
  };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The host name of a Host header, without its port or an IPv6 address's brackets. */
function hostName(header: string | undefined): string {
  const h = (header ?? '').toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']'));
  return h.replace(/:\d+$/, '');
}
