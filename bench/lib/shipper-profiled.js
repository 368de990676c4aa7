'use strict';
/**
 * Worker entry used by bench/ship.js: starts the V8 profiler inside this worker
 * thread, then runs the agent's real shipper (dist/agent/shipper-worker.js) with
 * the same workerData. On 'stop' from the parent it writes the profile.
 */
const fs = require('node:fs');
const path = require('node:path');
const inspector = require('node:inspector');
const { parentPort, workerData } = require('node:worker_threads');

if (workerData.noAsyncTraces) {
  // Experiment (BENCH_SHIP_NO_ASYNC_TRACES=1): the same shipper with nats.js's noAsyncTraces
  // connection option, which skips the Error objects made per request to keep async stacks.
  const file = path.join(__dirname, '..', '..', 'node_modules', '@nats-io', 'transport-node', 'lib', 'connect.js');
  const mod = require(file);
  const connect = mod.connect;
  mod.connect = (opts) => connect({ ...opts, noAsyncTraces: true });
}

const session = new inspector.Session();
session.connect();
const start = () => require(path.join(__dirname, '..', '..', 'dist', 'agent', 'shipper-worker.js'));
if (workerData.profileFile) {
  session.post('Profiler.enable', () => session.post('Profiler.setSamplingInterval', { interval: 500 }, () => session.post('Profiler.start', start)));
} else {
  start();
}
parentPort.on('message', (m) => {
  if (m !== 'stop') return;
  if (!workerData.profileFile) return parentPort.postMessage('stopped');
  session.post('Profiler.stop', (err, res) => {
    if (!err) fs.writeFileSync(workerData.profileFile, JSON.stringify(res.profile));
    parentPort.postMessage('stopped');
  });
});
