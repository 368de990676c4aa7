import type { EventEmitter } from 'node:events';
import type { Located } from './locate';

/** What the agent knows of a descriptor (or FileHandle) opened for writing under a root. */
export interface OpenFile {
  at: Located;
  /** Opened with O_APPEND: every write lands at the end, whatever position is given. */
  append: boolean;
  /** The descriptor's file position as we have followed it; null once we lost track. */
  pos: number | null;
  /** The file was removed while open: its writes no longer reach any name the standby has. */
  detached: boolean;
}

/**
 * Descriptors and FileHandles opened for writing under a root. Every wrapped
 * open sets or clears its number and every wrapped close clears it, so a reused
 * number never inherits another file's identity. A FileHandle is followed until
 * it closes or is collected: on Node 20 its `close` is a field of each handle,
 * not a method of the prototype, so no wrapper sees it, and each handle ever
 * opened stayed in `open` (14,790 after 8 minutes of a soak; renames and
 * removals walk that set).
 */
export class FdTable {
  private readonly byFd = new Map<number, OpenFile>();
  private readonly byHandle = new WeakMap<object, OpenFile>();
  private readonly live = new Set<OpenFile>();
  /** A handle dropped by the garbage collector without being closed (Node closes its descriptor then) stops being followed too. */
  private readonly collected = new FinalizationRegistry<OpenFile>((f) => this.live.delete(f));

  set(fd: number, f: OpenFile | undefined): void {
    const old = this.byFd.get(fd);
    if (old !== undefined) this.live.delete(old);
    if (f === undefined) this.byFd.delete(fd);
    else {
      this.byFd.set(fd, f);
      this.live.add(f);
    }
  }

  get(fd: unknown): OpenFile | undefined {
    return typeof fd === 'number' ? this.byFd.get(fd) : undefined;
  }

  /** Follows FileHandle `h` as `f` until it emits 'close' (documented since Node 15.4) or is collected. */
  setHandle(h: object, f: OpenFile): void {
    const old = this.byHandle.get(h);
    if (old !== undefined) this.live.delete(old);
    const known = old !== undefined;
    this.byHandle.set(h, f);
    this.live.add(f);
    this.collected.unregister(h);
    this.collected.register(h, f, h);
    // The listener lives on the handle itself: it keeps nothing alive that the handle did not.
    if (!known && typeof (h as Partial<EventEmitter>).once === 'function') (h as EventEmitter).once('close', () => this.dropHandle(h));
  }

  handle(h: object): OpenFile | undefined {
    return this.byHandle.get(h);
  }

  dropHandle(h: object): void {
    const f = this.byHandle.get(h);
    if (f !== undefined) this.live.delete(f);
    this.byHandle.delete(h);
    this.collected.unregister(h);
  }

  /** Every file followed now; small, since it holds only writable files under roots. */
  get open(): ReadonlySet<OpenFile> {
    return this.live;
  }
}
