import { DEFAULTS } from './settings';

/**
 * The one retry loop: NATS, JetStream and the state bucket come and go (an outage, a leader
 * election, a server that starts after us), and both agent and standby wait for them the same
 * way: try, say once what is being waited for, wait, try again.
 */
export interface RetryOptions {
  /** Said once, at the first failure (the caller words it: it knows what it was trying). */
  say: (err: Error) => void;
  /** First wait between tries (ms); each later wait doubles, up to `maxWaitMs`. Default DEFAULTS.retryFirstWaitMs. */
  firstWaitMs?: number;
  /** Longest wait (ms). Default `firstWaitMs`: a fixed pace. */
  maxWaitMs?: number;
  /** Give up with the last error once this time (ms since the epoch) has passed. Default never. */
  until?: number;
  /** Give up with the last error once this aborts; a wait in progress ends at once. */
  signal?: AbortSignal;
  /** Errors worth another try; any other is thrown at once. Default: every error. */
  retryable?: (err: unknown) => boolean;
}

/** Runs `fn` until it resolves, waiting between tries as `o` says; rejects with the error that made it give up. */
export async function retry<T>(fn: () => Promise<T>, o: RetryOptions): Promise<T> {
  const first = o.firstWaitMs ?? DEFAULTS.retryFirstWaitMs;
  const max = o.maxWaitMs ?? first;
  for (let wait = first, said = false; ; wait = Math.min(wait * 2, max)) {
    try {
      return await fn();
    } catch (err) {
      if (o.retryable?.(err) === false || Date.now() > (o.until ?? Infinity) || o.signal?.aborted === true) throw err;
      if (!said) o.say(err as Error);
      said = true;
      await pause(wait, o.signal);
    }
  }
}

/** Waits `ms`, or until `signal` aborts. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted === true) return resolve();
    const done = (): void => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
