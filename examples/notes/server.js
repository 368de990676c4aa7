'use strict';
// A small notes service that keeps its state in local files, the way many Node
// services do: one JSON file per note, an append-only audit log, uploaded files
// streamed to disk, a trash folder, and snapshots made with fs.cp. It knows
// nothing of understudy; run it with `node --require understudy/agent` to
// replicate every change it makes.
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { pipeline } = require('node:stream/promises');

const DATA = path.resolve(process.env.NOTES_DATA ?? path.join(__dirname, 'data'));
const PORT = Number(process.env.PORT ?? 0);

for (const dir of ['notes', 'uploads', 'trash', 'snapshots']) fs.mkdirSync(path.join(DATA, dir), { recursive: true });

const noteFile = (id) => path.join(DATA, 'notes', `${id}.json`);
const audit = (line) => fs.promises.appendFile(path.join(DATA, 'audit.log'), `${new Date().toISOString()} ${line}\n`);
const safeName = (s) => /^[\w.-]{1,100}$/.test(s) && !s.startsWith('.');

async function body(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
}

function send(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

const routes = {
  async 'GET /notes'(req, res) {
    const ids = (await fs.promises.readdir(path.join(DATA, 'notes'))).map((f) => f.replace(/\.json$/, ''));
    send(res, 200, ids);
  },
  async 'POST /notes'(req, res) {
    const { title, text } = await body(req);
    const id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
    await fs.promises.writeFile(noteFile(id), JSON.stringify({ id, title, text, created: new Date().toISOString() }, null, 2));
    await audit(`create ${id}`);
    send(res, 201, { id });
  },
  async 'PUT /notes/:id'(req, res, id) {
    const note = JSON.parse(fs.readFileSync(noteFile(id), 'utf8'));
    Object.assign(note, await body(req), { updated: new Date().toISOString() });
    fs.writeFileSync(noteFile(id), JSON.stringify(note, null, 2));
    await audit(`update ${id}`);
    send(res, 200, note);
  },
  async 'DELETE /notes/:id'(req, res, id) {
    await fs.promises.rename(noteFile(id), path.join(DATA, 'trash', `${id}.json`));
    await audit(`trash ${id}`);
    send(res, 200, { trashed: id });
  },
  async 'POST /uploads/:id'(req, res, name) {
    await pipeline(req, fs.createWriteStream(path.join(DATA, 'uploads', name), { mode: 0o640 }));
    await audit(`upload ${name}`);
    send(res, 201, { stored: name });
  },
  async 'POST /snapshots'(req, res) {
    const name = new Date().toISOString().replace(/[:.]/g, '-');
    await fs.promises.cp(path.join(DATA, 'notes'), path.join(DATA, 'snapshots', name), { recursive: true });
    await audit(`snapshot ${name}`);
    send(res, 201, { snapshot: name });
  },
  async 'POST /empty-trash'(req, res) {
    await fs.promises.rm(path.join(DATA, 'trash'), { recursive: true, force: true });
    await fs.promises.mkdir(path.join(DATA, 'trash'));
    await audit('empty trash');
    send(res, 200, { emptied: true });
  },
};

const server = http.createServer(async (req, res) => {
  const [, first, id] = req.url.split('/');
  const route = routes[`${req.method} /${first}${id ? '/:id' : ''}`];
  if (route === undefined || (id !== undefined && !safeName(id))) return send(res, 404, { error: 'no such route' });
  try {
    await route(req, res, id);
  } catch (err) {
    send(res, err.code === 'ENOENT' ? 404 : 500, { error: err.message });
  }
});

server.listen(PORT, '127.0.0.1', () => console.log(`notes service on http://127.0.0.1:${server.address().port} storing in ${DATA}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
