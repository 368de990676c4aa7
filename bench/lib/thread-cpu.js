'use strict';
const fs = require('node:fs');

/**
 * CPU ms by thread from /proc (10 ms ticks): the main thread (the application's, where the agent's
 * wrappers run) and all others together (the shipper's worker thread, libuv's pool, V8's helpers).
 * Undefined where there is no /proc.
 */
function threadCpuMs() {
  try {
    let main = 0;
    let others = 0;
    for (const tid of fs.readdirSync('/proc/self/task')) {
      const st = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      const ms = (Number(f[11]) + Number(f[12])) * 10;
      if (Number(tid) === process.pid) main += ms;
      else others += ms;
    }
    return { main, others };
  } catch {
    return undefined;
  }
}

module.exports = { threadCpuMs };
