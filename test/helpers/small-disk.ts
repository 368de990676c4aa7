import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeSync, type WriteFn } from '../../replayer/write';

/**
 * A small filesystem simulated in the replayer's write function, for machines where no
 * tmpfs can be mounted: a write that grows a file under `dir` (or the file `dir` itself)
 * by more than `free` bytes fails with ENOSPC, as write(2) does on a full disk.
 */
export class SmallDisk {
  /** `next` is the write that goes on (another SmallDisk's, to fill two places). */
  constructor(private readonly dir: string, public free: number, private readonly next: WriteFn = writeSync) {}

  readonly write: WriteFn = (fd, buf, off, len, pos) => {
    const file = fs.readlinkSync(`/proc/self/fd/${fd}`);
    if (file === this.dir || file.startsWith(this.dir + path.sep)) {
      const growth = Math.max(0, pos + len - fs.fstatSync(fd).size);
      if (growth > this.free) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
      this.free -= growth;
    }
    return this.next(fd, buf, off, len, pos);
  };
}
