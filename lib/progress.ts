import { DEFAULTS } from './settings';
/** Counts shown while a long command runs. */
export interface Counts { objects: number; bytes: number }

/**
 * Progress of a long command: on a terminal one line redrawn in place (objects,
 * bytes, rate, time left); otherwise a plain line every few seconds, for logs.
 */
export class Progress {
  private readonly started = Date.now();
  private shownAt = 0;
  private readonly tty: boolean;

  constructor(private readonly label: string, private readonly total: Counts, private readonly out: NodeJS.WriteStream = process.stderr) {
    this.tty = out.isTTY === true;
  }

  /** Shows `done` if it is time to (often on a terminal, every 5 s otherwise). */
  update(done: Counts, force = false): void {
    const now = Date.now();
    if (!force && now - this.shownAt < (this.tty ? DEFAULTS.progress.terminalEveryMs : DEFAULTS.progress.logEveryMs)) return;
    this.shownAt = now;
    const line = this.line(done, now);
    if (this.tty) this.out.write(`\r\x1b[K${line}`);
    else this.out.write(`${line}\n`);
  }

  /** The final line. */
  finish(done: Counts, note = ''): void {
    const line = `${this.line(done, Date.now())}${note}`;
    this.out.write(this.tty ? `\r\x1b[K${line}\n` : `${line}\n`);
  }

  private line(done: Counts, now: number): string {
    const secs = Math.max((now - this.started) / 1000, 0.001);
    const rate = done.bytes / secs;
    const left = this.total.bytes > done.bytes && rate > 0 ? (this.total.bytes - done.bytes) / rate : 0;
    const pct = this.total.objects > 0 ? Math.floor((100 * done.objects) / this.total.objects) : 100;
    return `${this.label}: ${done.objects}/${this.total.objects} objects (${pct}%), ${mib(done.bytes)}/${mib(this.total.bytes)} MiB, ` +
      `${mib(rate)} MiB/s, ${(done.objects / secs).toFixed(0)} objects/s, ${clock(secs)} elapsed${left > 0 ? `, ${clock(left)} left` : ''}`;
  }
}

function mib(n: number): string {
  return (n / (1024 * 1024)).toFixed(1);
}

function clock(secs: number): string {
  const s = Math.round(secs);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}
