'use strict';
// A small service that keeps its state in SQLite through better-sqlite3, and knows nothing
// of understudy:
//   POST /orders (body = JSON {item, qty})  -> one transaction: an order row and its stock move
//   POST /receipts/ID (body = bytes)        -> a file DATA/receipts/ID beside the database
//   GET  /count                             -> how many orders the database holds
// Run it with: node --require understudy/agent examples/orders/server.js (ORDERS_DATA=dir).
const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const Database = require('better-sqlite3');

const DATA = process.env.ORDERS_DATA;
if (!DATA) throw new Error('ORDERS_DATA (the data directory) is not set');
fs.mkdirSync(path.join(DATA, 'receipts'), { recursive: true });
const db = new Database(path.join(DATA, 'orders.db'));
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.exec(`CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL, qty INTEGER NOT NULL, at TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS stock (item TEXT PRIMARY KEY, moved INTEGER NOT NULL)`);
const insert = db.prepare('INSERT INTO orders (item, qty, at) VALUES (?, ?, ?)');
const move = db.prepare('INSERT INTO stock (item, moved) VALUES (?, ?) ON CONFLICT (item) DO UPDATE SET moved = moved + excluded.moved');
const place = db.transaction((item, qty) => {
  const { lastInsertRowid } = insert.run(item, qty, new Date().toISOString());
  move.run(item, qty);
  return Number(lastInsertRowid);
});

http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    try {
      const body = Buffer.concat(chunks);
      if (req.method === 'POST' && req.url === '/orders') {
        const { item, qty } = JSON.parse(body.toString());
        return reply(res, { id: place(String(item), Number(qty)) });
      }
      const receipt = /^\/receipts\/(\d+)$/.exec(req.url ?? '');
      if (req.method === 'POST' && receipt) {
        fs.writeFileSync(path.join(DATA, 'receipts', receipt[1]), body);
        return reply(res, { ok: true });
      }
      if (req.method === 'GET' && req.url === '/count') return reply(res, { orders: db.prepare('SELECT count(*) AS n FROM orders').get().n });
      res.writeHead(404).end();
    } catch (err) {
      res.writeHead(500).end(String(err.message));
    }
  });
}).listen(Number(process.env.PORT ?? 0), '127.0.0.1', function () {
  console.log(`orders service on ${this.address().port}`);
});

function reply(res, value) {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(value));
}
