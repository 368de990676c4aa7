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
 * number never inherits another file's identity.
 */
export class FdTable {
  private readonly byFd = new Map<number, OpenFile>();
  private readonly byHandle = new WeakMap<object, OpenFile>();
  private readonly live = new Set<OpenFile>();

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

  setHandle(h: object, f: OpenFile): void {
    this.byHandle.set(h, f);
    this.live.add(f);
  }

  handle(h: object): OpenFile | undefined {
    return this.byHandle.get(h);
  }

  dropHandle(h: object): void {
    const f = this.byHandle.get(h);
    if (f !== undefined) this.live.delete(f);
    this.byHandle.delete(h);
  }

  /** Every file followed now; small, since it holds only writable files under roots. */
  get open(): ReadonlySet<OpenFile> {
    return this.live;
  }
}
