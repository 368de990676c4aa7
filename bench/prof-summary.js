'use strict';
/**
 * Summarises V8 .cpuprofile files (from node --cpu-prof): top functions by
 * self time, and by inclusive time for functions in this repo's dist/.
 *   node bench/prof-summary.js file.cpuprofile [more…] [--top N]
 */
const fs = require('node:fs');
const path = require('node:path');

function summarize(file, top = 25) {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const ch of n.children ?? []) parent.set(ch, n.id);
  // Sample time per node.
  const self = new Map();
  const deltas = prof.timeDeltas;
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = deltas[i + 1] ?? 0;
    self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + dt);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const label = (n) => {
    const f = n.callFrame;
    const where = f.url ? `${shorten(f.url)}:${f.lineNumber + 1}` : '';
    return `${f.functionName || '(anonymous)'} ${where}`.trim();
  };
  const selfBy = new Map();
  const inclBy = new Map();
  for (const [id, t] of self) {
    const n = byId.get(id);
    const key = label(n);
    selfBy.set(key, (selfBy.get(key) ?? 0) + t);
    // Inclusive: every distinct frame on the stack gets the sample once.
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const k = label(byId.get(cur));
      if (seen.has(k)) continue;
      seen.add(k);
      inclBy.set(k, (inclBy.get(k) ?? 0) + t);
    }
  }
  const pct = (t) => `${((100 * t) / total).toFixed(1).padStart(5)}%`;
  const lines = [`${path.basename(file)}: ${(total / 1000).toFixed(0)} ms sampled`];
  lines.push('  self time:');
  for (const [k, t] of [...selfBy].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`    ${pct(t)}  ${k}`);
  lines.push('  inclusive time, functions of dist/:');
  for (const [k, t] of [...inclBy].filter(([k]) => k.includes('dist/')).sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`    ${pct(t)}  ${k}`);
  }
  return lines.join('\n');
}

function shorten(url) {
  const i = url.indexOf('/dist/');
  if (i >= 0) return url.slice(i + 1);
  const j = url.indexOf('/node_modules/');
  if (j >= 0) return url.slice(j + 1);
  return url.replace(/^file:\/\//, '');
}

module.exports = { summarize };

if (require.main === module) {
  const args = process.argv.slice(2);
  const t = args.indexOf('--top');
  const top = t >= 0 ? Number(args.splice(t, 2)[1]) : 25;
  for (const f of args) console.log(summarize(f, top) + '\n');
}
