import shimmer from 'shimmer';
import type { Recorder } from '../recorder';
import type { FreezeGate } from '../freeze';
import { warnOnce } from '../log';
import type { Overlap, Target } from '../overlap';

/** What to journal once a call succeeded: its arguments (callback removed), its result, its `this`. */
export type Recipe = (r: Recorder, args: unknown[], result: unknown, self: unknown) => void;

/** The file whose content a call changes, named before it runs (arguments without the callback, its `this`). */
export type TargetOf = (r: Recorder, args: unknown[], self: unknown) => Target | undefined;

/** How one function is wrapped: the parts of a table row the wrappers use. */
export interface Wrapping {
  before?: Recipe;
  after?: Recipe;
  /** Index of a path argument below which nothing is journaled while an async call runs. */
  quietArg?: number;
  target?: TargetOf;
}

type Fn = (this: unknown, ...args: unknown[]) => unknown;

/**
 * Runs a recipe with the agent's own fs use suppressed; a failure of ours is said once, never thrown
 * into the host. Returns the seq the caller must wait for in sync/strong modes (0: none).
 */
function journal(r: Recorder, recipe: Recipe, args: unknown[], result: unknown, self: unknown, overlap?: Overlap): number {
  const before = r.lastSeq;
  r.depth++;
  r.overlap = overlap;
  try {
    recipe(r, args, result, self);
  } catch (err) {
    warnOnce(`journal:${(err as Error).message}`, `a change was made but could not be journaled: ${(err as Error).message}`);
  } finally {
    r.overlap = undefined;
    r.depth--;
  }
  if (r.commit === undefined) return 0;
  if (r.lastSeq > before) return r.lastSeq;
  // An overlapping call whose bytes an earlier entry already read from the file waits for that entry.
  return overlap?.tainted === true ? overlap.lastSeq : 0;
}

/** The target of a call, computed with the agent's own fs use suppressed; undefined when it has none or we cannot tell. */
function targetOf(r: Recorder, w: Wrapping, args: unknown[], self: unknown): Target | undefined {
  if (w.target === undefined) return undefined;
  r.depth++;
  try {
    return w.target(r, args, self);
  } catch {
    return undefined;
  } finally {
    r.depth--;
  }
}

/** Wrapper for a synchronous function. */
export function syncWrapper(r: Recorder, orig: Fn, w: Wrapping): Fn {
  const { after, before } = w;
  const gate = r.gate;
  return function (this: unknown, ...args: unknown[]) {
    if (r.depth > 0) return orig.apply(this, args);
    // A checkpoint's freeze holds the call here, before anything of it happens (agent/freeze).
    gate.enterSync();
    let result: unknown;
    let seq = 0;
    try {
      if (before !== undefined) journal(r, before, args, undefined, this);
      // A synchronous call overlaps the asynchronous ones in flight on its file: the thread pool writes meanwhile.
      // Most of the time nothing is in flight: then naming the file (a realpath and an lstat) is skipped.
      const t = r.overlaps.idle ? undefined : targetOf(r, w, args, this);
      const overlap = t === undefined ? undefined : r.overlaps.during(t);
      r.depth++;
      try {
        result = orig.apply(this, args);
      } finally {
        r.depth--;
      }
      seq = after === undefined ? 0 : journal(r, after, args, result, this, overlap);
    } finally {
      gate.leaveSync();
    }
    if (seq > 0) r.commit?.waitSync(seq, r.lastWhat);
    return result;
  };
}

/**
 * Wrapper for a callback-last function: journals in the callback, before the
 * caller's callback runs. `quietArg` names a path argument under which changes
 * are not journaled while the call runs (fs.cp does its work through the public
 * fs.promises functions, after our wrapper has returned; its result is journaled whole).
 */
export function callbackWrapper(r: Recorder, orig: Fn, w: Wrapping): Fn {
  const { after, before, quietArg } = w;
  const gate = r.gate;
  return function wrapper(this: unknown, ...args: unknown[]) {
    const cb = args[args.length - 1];
    // A call Node will reject (no callback) or one made by fs itself goes straight through.
    if (r.depth > 0 || typeof cb !== 'function') return orig.apply(this, args);
    if (!gate.tryEnter()) return deferCallback(gate, wrapper, this, args, cb as Fn);
    const callArgs = args.slice(0, -1);
    if (before !== undefined) journal(r, before, callArgs, undefined, this);
    const quiet = quietArg === undefined ? undefined : r.quiet(callArgs[quietArg]);
    const t = targetOf(r, w, callArgs, this);
    const overlap = t === undefined ? undefined : r.overlaps.begin(t);
    const done = (): void => {
      quiet?.();
      if (t !== undefined && overlap !== undefined) r.overlaps.end(t, overlap);
    };
    const passThrough = after === undefined && quiet === undefined && overlap === undefined;
    const wrapped = passThrough ? cb : function (this: unknown, err: unknown, ...results: unknown[]) {
      done();
      let seq = 0;
      try {
        if ((err === null || err === undefined) && after !== undefined) seq = journal(r, after, callArgs, results[0], undefined, overlap);
      } finally {
        gate.leave();
      }
      if (seq === 0 || r.commit === undefined) return (cb as Fn).call(this, err, ...results);
      // Sync and strong modes: the caller hears of its change once the entry is confirmed.
      const self = this;
      r.commit.waitAsync(seq, r.lastWhat).then(() => (cb as Fn).call(self, err, ...results), (e: unknown) => (cb as Fn).call(self, e));
      return undefined;
    };
    r.depth++;
    try {
      return orig.apply(this, [...callArgs, wrapped]);
    } catch (err) {
      done();
      // Rejected before it began: nothing of it will be journaled.
      if (!passThrough) gate.leave();
      throw err;
    } finally {
      r.depth--;
      // Nothing to journal later: what was to be journaled (`before`) is.
      if (passThrough) gate.leave();
    }
  };
}

/**
 * A callback call that met a freeze runs once it thaws. What its argument checks throw then
 * reaches its callback: the caller's stack is gone.
 */
function deferCallback(gate: FreezeGate, wrapper: Fn, self: unknown, args: unknown[], cb: Fn): undefined {
  void gate.thawed().then(() => {
    try {
      wrapper.apply(self, args);
    } catch (err) {
      cb(err);
    }
  });
  return undefined;
}

/** Wrapper for a promise-returning function (fs.promises and FileHandle methods); `quietArg` as for callbacks. */
export function promiseWrapper(r: Recorder, orig: Fn, w: Wrapping): Fn {
  const { after, before, quietArg } = w;
  const gate = r.gate;
  return function wrapper(this: unknown, ...args: unknown[]): unknown {
    if (r.depth > 0) return orig.apply(this, args);
    if (!gate.tryEnter()) {
      const self = this;
      return gate.thawed().then((): unknown => wrapper.apply(self, args));
    }
    if (before !== undefined) journal(r, before, args, undefined, this);
    const quiet = quietArg === undefined ? undefined : r.quiet(args[quietArg]);
    const t = targetOf(r, w, args, this);
    const overlap = t === undefined ? undefined : r.overlaps.begin(t);
    const done = (): void => {
      quiet?.();
      if (t !== undefined && overlap !== undefined) r.overlaps.end(t, overlap);
    };
    r.depth++;
    let p: unknown;
    try {
      p = orig.apply(this, args);
    } catch (err) {
      done();
      gate.leave();
      throw err;
    } finally {
      r.depth--;
    }
    if (!(p instanceof Promise)) {
      done();
      gate.leave();
      return p;
    }
    if (after === undefined && quiet === undefined && overlap === undefined) {
      gate.leave();
      return p;
    }
    const self = this;
    return p.then((result: unknown) => {
      done();
      let seq = 0;
      try {
        if (after !== undefined) seq = journal(r, after, args, result, self, overlap);
      } finally {
        gate.leave();
      }
      if (seq === 0 || r.commit === undefined) return result;
      return r.commit.waitAsync(seq, r.lastWhat).then(() => result);
    }, (err: unknown) => {
      done();
      gate.leave();
      throw err;
    });
  };
}

/**
 * Replaces `target[name]` with `make(original)`, idempotently (a second install
 * unwraps first), keeping every own property of the original (name, length,
 * realpath.native, the promisify symbols) so callers cannot tell.
 */
export function patch(target: object, name: string, make: (orig: Fn) => Fn): boolean {
  const t = target as Record<string, unknown>;
  const current = t[name] as (Fn & { __wrapped?: boolean }) | undefined;
  if (typeof current !== 'function') return false;
  if (current.__wrapped === true) shimmer.unwrap(t, name);
  shimmer.wrap(t, name, (orig: unknown) => copyOwnProperties(make(orig as Fn), orig as Fn));
  return true;
}

/** Puts back what `patch` replaced, if it is still ours. */
export function unpatch(target: object, name: string): void {
  const current = (target as Record<string, unknown>)[name] as { __wrapped?: boolean } | undefined;
  if (current?.__wrapped === true) shimmer.unwrap(target as Record<string, unknown>, name);
}

/** Copies every own property of `orig` (name, length, statics) onto `wrapper`, so callers cannot tell them apart. */
export function copyOwnProperties(wrapper: Fn, orig: Fn): Fn {
  for (const key of Reflect.ownKeys(orig)) {
    if (key === 'prototype' || key === '__wrapped' || key === '__original' || key === '__unwrap') continue;
    const d = Reflect.getOwnPropertyDescriptor(orig, key);
    if (d !== undefined) {
      try {
        Reflect.defineProperty(wrapper, key, d);
      } catch {
        // A non-configurable property on the wrapper: keep the wrapper's own.
      }
    }
  }
  return wrapper;
}
