import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * Headless Chromium from Debian's package, driven by its own flags (no driver): --dump-dom
 * prints the DOM once the page's scripts ran for --virtual-time-budget ms of the page's
 * time. That time stands still while a fetch is pending, so a test that holds a request
 * decides what the page sees next.
 */

/** Fails clearly when chromium is not installed, as nats-server's helper does. */
export function requireChromium(): void {
  if (spawnSync('chromium', ['--version']).error !== undefined) throw new Error('chromium not found on PATH (apt-get install chromium)');
}

/** The page's DOM after `budgetMs` of its time. */
export function dumpDom(url: string, budgetMs: number): Promise<string> {
  return runChromium(['--dump-dom', `--virtual-time-budget=${budgetMs}`, url]).then((r) => r.stdout);
}

/** A PNG of the page after `budgetMs` of its time. */
export async function screenshot(url: string, file: string, size: [number, number], budgetMs: number): Promise<void> {
  await runChromium([`--screenshot=${file}`, `--window-size=${size[0]},${size[1]}`, '--hide-scrollbars', `--virtual-time-budget=${budgetMs}`, url]);
}

function runChromium(args: string[]): Promise<{ stdout: string; stderr: string }> {
  requireChromium();
  // A profile of its own each time: two runs at once must not share one, nor leave one behind.
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-chromium-'));
  const argv = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-extensions', '--disable-sync', `--user-data-dir=${profile}`, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn('chromium', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // A hung browser must not hang the suite: well past any budget a test gives.
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      fs.rmSync(profile, { recursive: true, force: true });
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`chromium ${args.join(' ')} ended with ${code ?? signal}:\n${stderr.slice(-2000)}`));
    });
  });
}

/** The text inside the first element matching `open` (a regex source for its start tag), tags stripped. */
export function textOf(html: string, open: string): string | undefined {
  const m = new RegExp(`${open}[^>]*>([\\s\\S]*?)</(td|div|span|tr|li|b)>`).exec(html);
  return m === null ? undefined : m[1].replace(/<[^>]+>/g, '').replace(/&nbsp;/g, ' ').trim();
}

/** The HTML of the table row `<tr data-KEY="VALUE">`, up to its end. */
export function rowOf(html: string, key: string, value: string): string | undefined {
  const start = html.indexOf(`<tr data-${key}="${value}">`);
  if (start < 0) return undefined;
  return html.slice(start, html.indexOf('</tr>', start) + 5);
}
