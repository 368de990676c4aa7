import { DEFAULTS } from '../lib/settings';

/**
 * A commit fsyncs every file it makes durable at once (FsApplier.sync), each on libuv's
 * thread pool. With the default 4 threads they wait in line, four at a time; with 32 the
 * disk gets them together, and a filesystem with a journal can fold them into fewer
 * commits. Measured here (an ext4 without a journal), 300 fsyncs of new 4 KiB files:
 * 49-57 ms with 4 threads, 28 ms with 32, no better with 64 or 128; a fresh replayer's
 * drain went from 1,741 to 3,063 entries/s.
 *
 * libuv reads the size when its pool first starts, so this module is imported before
 * anything that does asynchronous I/O; a size the operator set is kept.
 */
process.env.UV_THREADPOOL_SIZE ??= String(DEFAULTS.standby.threadPoolSize);
