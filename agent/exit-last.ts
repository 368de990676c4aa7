/**
 * Exit work that must come after the application's own exit handlers: pino flushes its
 * transport thread in one (registered after the agent's, often in the very tick that calls
 * process.exit()), and that thread's last lines reach its journal only then.
 */
const last: (() => void)[] = [];
let installed = false;

/** Runs `fn` at exit once every 'exit' listener has run, those added later included. */
export function onExitLast(fn: () => void): void {
  last.push(fn);
  if (installed) return;
  installed = true;
  // As signal-exit does: the 'exit' event is emitted through process.emit, and whatever
  // listeners it has by then have all run when the real emit returns.
  const emit = process.emit as (this: NodeJS.Process, event: string | symbol, ...args: unknown[]) => boolean;
  const wrapped = function (this: NodeJS.Process, event: string | symbol, ...args: unknown[]): boolean {
    const had = emit.call(this, event, ...args);
    if (event === 'exit') {
      for (const f of last.splice(0)) {
        try {
          f();
        } catch {
          // the host must never see our error, least of all at exit
        }
      }
    }
    return had;
  };
  process.emit = wrapped as typeof process.emit;
}
