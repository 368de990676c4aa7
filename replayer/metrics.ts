import * as http from 'node:http';

/** One sample of a metric: labels and value. */
export interface Sample { labels?: Record<string, string>; value: number }
/** One metric family in Prometheus's text format. */
export interface Metric { name: string; help: string; type: 'counter' | 'gauge'; samples: Sample[] }

/** Renders metric families in the Prometheus text exposition format (0.0.4). */
export function render(metrics: Metric[]): string {
  const esc = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
  const lines: string[] = [];
  for (const m of metrics) {
    lines.push(`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.type}`);
    for (const s of m.samples) {
      const labels = s.labels === undefined ? '' : `{${Object.entries(s.labels).map(([k, v]) => `${k}="${esc(v)}"`).join(',')}}`;
      lines.push(`${m.name}${labels} ${Number.isFinite(s.value) ? s.value : 'NaN'}`);
    }
  }
  return lines.join('\n') + '\n';
}

/** Serves GET /metrics from `collect`; resolves once listening. */
export async function serveMetrics(port: number, host: string, collect: () => Promise<Metric[]>): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url !== '/metrics' && req.url !== '/')) {
      res.writeHead(404).end('not found\n');
      return;
    }
    collect().then((m) => {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(render(m));
    }, (err: Error) => {
      res.writeHead(500).end(`${err.message}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
