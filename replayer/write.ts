/** The replayer's files go through lib/durable-file's write(2), which a test replaces with a full disk. */
export { writeAll, writeSync, type WriteFn } from '../lib/durable-file';
