'use strict';
// A small service with all three kinds of state understudy replicates, and no line
// that knows about it except one optional nameQueue call:
//   files          POST /uploads/NAME (body = bytes)     -> DATA/uploads/NAME
//   configuration  POST /flags/NAME?on=true|false        -> nconf 'flags:NAME'; POST /maintenance?on=1 -> process.env.MAINTENANCE
//   jobs           POST /jobs (body = JSON)              -> a fastq queue; each job takes JOB_MS and writes DATA/done/ID.json
// GET /status tells what is done. Run it with: node --require understudy/agent examples/jobs/server.js
const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const fastq = require('fastq');
const nconf = require('nconf');

const DATA = process.env.JOBS_DATA;
const JOB_MS = Number(process.env.JOB_MS ?? 300);
if (!DATA) throw new Error('JOBS_DATA (the data directory) is not set');
fs.mkdirSync(path.join(DATA, 'uploads'), { recursive: true });
fs.mkdirSync(path.join(DATA, 'done'), { recursive: true });
nconf.use('memory');
nconf.defaults({ flags: {} });

const done = [];
const queue = fastq((job, cb) => {
  setTimeout(() => {
    fs.writeFileSync(path.join(DATA, 'done', `${job.id}.json`), JSON.stringify({ ...job, doneAt: new Date().toISOString() }));
    done.push(job.id);
    cb(null);
  }, JOB_MS);
}, 1);
try {
  // Optional: without it the queue is named after this file and line.
  require('understudy').nameQueue(queue, 'thumbnails');
} catch {
  // running without understudy installed
}

function body(req) {
  return new Promise((resolve, reject) => {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  const reply = (code, value) => {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify(value));
  };
  try {
    let m;
    if (req.method === 'POST' && (m = /^\/uploads\/([\w.-]+)$/.exec(url.pathname))) {
      const data = await body(req);
      await fs.promises.writeFile(path.join(DATA, 'uploads', m[1]), data);
      return reply(201, { stored: m[1], bytes: data.length });
    }
    if (req.method === 'POST' && (m = /^\/flags\/(\w+)$/.exec(url.pathname))) {
      nconf.set(`flags:${m[1]}`, url.searchParams.get('on') === 'true');
      return reply(200, nconf.get('flags'));
    }
    if (req.method === 'POST' && url.pathname === '/maintenance') {
      if (url.searchParams.get('on') === '1') process.env.MAINTENANCE = 'on';
      else delete process.env.MAINTENANCE;
      return reply(200, { maintenance: process.env.MAINTENANCE ?? 'off' });
    }
    if (req.method === 'POST' && url.pathname === '/jobs') {
      const job = JSON.parse((await body(req)).toString('utf8'));
      queue.push(job);
      return reply(202, { queued: job.id, waiting: queue.length() });
    }
    if (req.method === 'GET' && url.pathname === '/status') return reply(200, { done, waiting: queue.length(), flags: nconf.get('flags') });
    return reply(404, { error: 'no such route' });
  } catch (err) {
    return reply(500, { error: err.message });
  }
});

server.listen(Number(process.env.PORT ?? 8080), '127.0.0.1', () => {
  console.log(`jobs service on http://127.0.0.1:${server.address().port}`);
});
