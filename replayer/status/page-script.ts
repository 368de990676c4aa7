/**
 * The status page's script, served as /page.js: it fetches /status.json every refresh and
 * draws it (tables, badges, the lag charts as inline SVG). Plain browser JavaScript, no
 * framework and nothing fetched from elsewhere. Every value from the JSON reaches the page as
 * text (textContent, attributes), never as HTML: reasons and paths come from the network.
 * Written without template literals, so that it can live in this string.
 */
export const PAGE_SCRIPT = String.raw`(function () {
'use strict';
var body = document.body;
var REFRESH = Number(body.dataset.refreshMs) || 2000;
var TIMEOUT = Number(body.dataset.answerTimeoutMs) || 5000;
var WARN_PCT = Number(body.dataset.warnPct) || 80;
var SVG = 'http://www.w3.org/2000/svg';
var COLORS = ['#2563eb', '#e8590c', '#0ca678', '#ae3ec9', '#d6336c', '#1098ad', '#f59f00', '#5c7cfa'];
var last = null;
var lastAnswer = 0;
var units = { journals: 'lag_entries', standbys: 'lag_entries' };

function $(id) { return document.getElementById(id); }
function h(tag, cls, kids, title) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (title) e.title = title;
  (kids || []).forEach(function (k) { if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k)); });
  return e;
}
function s(tag, attrs, text) {
  var e = document.createElementNS(SVG, tag);
  Object.keys(attrs).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
  if (text !== undefined) e.textContent = text;
  return e;
}
function badge(text, kind, title) { return h('span', 'badge ' + (kind || ''), [text], title); }
function dash(v) { return v === undefined || v === null || v === '' ? '-' : v; }
function ms(v) { return typeof v === 'number' ? v : typeof v === 'string' ? Date.parse(v) : NaN; }
function clock(t) { var d = new Date(t); return isNaN(d.getTime()) ? '-' : d.toLocaleTimeString([], { hour12: false }); }
function ago(v) {
  var t = ms(v);
  if (isNaN(t)) return '-';
  var sec = Math.max(0, (Date.now() - t) / 1000);
  if (sec < 60) return Math.round(sec) + ' s ago';
  if (sec < 3600) return Math.round(sec / 60) + ' min ago';
  if (sec < 86400) return (sec / 3600).toFixed(1) + ' h ago';
  return (sec / 86400).toFixed(1) + ' d ago';
}
function when(v) { var t = ms(v); return isNaN(t) ? null : h('span', null, [ago(t)], new Date(t).toISOString()); }
function bytes(n) {
  if (typeof n !== 'number' || !isFinite(n)) return '-';
  if (n >= 1073741824) return (n / 1073741824).toFixed(1) + ' GiB';
  if (n >= 1048576) return (n / 1048576).toFixed(1) + ' MiB';
  if (n >= 1024) return (n / 1024).toFixed(1) + ' KiB';
  return n + ' B';
}
function count(n) { return typeof n === 'number' ? n.toLocaleString('en-US') : '-'; }
function td(v, cls, field) { var e = h('td', cls, [v === null || v === undefined ? '-' : v]); if (field) e.dataset.field = field; return e; }
function lagCell(v, field, fmt) {
  var cls = 'n ' + (v === 0 ? 'lag0' : typeof v === 'number' ? 'lagn' : '');
  return td(typeof v === 'number' ? (fmt || count)(v) : '-', cls, field);
}

var STATE_KIND = { streaming: 'ok', 'catching up': 'info', stopped: 'off', lost: 'bad' };

/** The row's fields as a StandbyRow names them; an older standby record is read through the same names. */
function standbyView(x, stream) {
  var committed = x.committed_seq;
  var lag = x.lag_entries;
  return { name: x.name, journal: x.journal, host: x.host, state: x.state, committed: committed, lag: lag, lag_bytes: x.lag_bytes, lag_seconds: x.lag_seconds,
    safe_bytes: x.safe_bytes, max_lag_bytes: x.max_lag_bytes, max_lag_seconds: x.max_lag_seconds,
    last_active: x.last_active !== undefined ? x.last_active : x.time, inactive_since: x.inactive_since, lost: x.lost, rebase: x.rebase, checkpoints: x.checkpoints };
}

function alertsOf(d) {
  var out = [];
  d.journals.forEach(function (r) {
    if (r.standby_failing) out.push(['bad', 'journal ' + r.journal + ': ', 'STANDBY FAILING', ': its disk failed (' + r.standby_failing + '); nothing past applied ' + dash(r.applied_seq) + ' is on it for sure']);
    if (r.stream_refuses) out.push(['bad', 'journal ' + r.journal + ': ', 'THE STREAM REFUSES ITS ENTRIES', ' since ' + r.stream_refuses.since + ' (' + r.stream_refuses.reason + '): they wait in the agent\'s spool']);
    if (r.differs) out.push(['bad', 'journal ' + r.journal + ': ', 'standby differs', ': ' + r.differs]);
    if (r.may_differ) out.push(['warn', 'journal ' + r.journal + ': ', 'STANDBY MAY DIFFER', ': ' + r.may_differ]);
  });
  (d.doubts || []).forEach(function (x) {
    var some = (x.objects || []).slice(0, 5).map(function (o) { return o.root === '' ? o.path : o.root + '/' + o.path; }).join(', ');
    out.push(['warn', 'STANDBY ' + x.standby + ' ', 'MAY DIFFER', ' from the primary: ' + x.count + ' object(s) it cannot be sure of (' + some + (x.count > 5 ? ', …' : '') + '); understudy verify --repair mends them']);
  });
  d.standbys.forEach(function (x) {
    if (x.lost) out.push(['bad', 'standby ' + x.name + ': ', 'LOST', ' since ' + x.lost.since + ': ' + x.lost.reason + (x.lost.by ? ' (marked by ' + x.lost.by + ')' : '')]);
  });
  if (d.stream && d.stream.used_pct >= WARN_PCT) out.push(['warn', 'stream ' + d.stream.name + ': ', d.stream.used_pct + ' % full', ': when full it refuses entries and agents spool them']);
  return out;
}

function renderAlerts(d) {
  $('alerts').replaceChildren.apply($('alerts'), alertsOf(d).map(function (a) { return h('li', a[0], [a[1], h('b', null, [a[2]]), a[3]]); }));
}

function points(samples, pick) {
  return samples.map(function (x) { return [x.t, pick(x)]; }).filter(function (p) { return typeof p[1] === 'number' && isFinite(p[1]); });
}

function sparkline(samples) {
  var svg = $('stream-spark');
  var pts = points(samples, function (x) { return x.stream_bytes; });
  if (pts.length < 2) return svg.replaceChildren();
  var t0 = pts[0][0], t1 = pts[pts.length - 1][0], max = Math.max.apply(null, pts.map(function (p) { return p[1]; })) || 1;
  var xy = pts.map(function (p) { return ((p[0] - t0) / Math.max(1, t1 - t0) * 300).toFixed(1) + ',' + (34 - p[1] / max * 30).toFixed(1); });
  svg.replaceChildren(s('polygon', { points: '0,36 ' + xy.join(' ') + ' 300,36' }), s('polyline', { points: xy.join(' ') }));
}

function renderStream(u, samples) {
  var fill = $('stream-fill');
  var pct = u.max_bytes > 0 ? u.used_pct : 0;
  fill.style.width = Math.min(100, Math.max(pct > 0 ? 1 : 0, pct)) + '%';
  fill.className = 'fill' + (pct >= 95 ? ' bad' : pct >= WARN_PCT ? ' warn' : '');
  fill.dataset.pct = String(pct);
  $('stream-text').textContent = u.max_bytes > 0 ? pct + ' % full · ' + bytes(u.bytes) + ' of ' + bytes(u.max_bytes) : bytes(u.bytes) + ' (no limit)';
  $('stream-more').textContent = count(u.messages) + ' messages · last sequence ' + count(u.last_seq);
  sparkline(samples);
}

function latest(list, key) {
  return list.slice().sort(function (a, b) { return key(b) - key(a); })[0];
}

function card(id, kids) { var b = $(id).querySelector('.body'); b.replaceChildren.apply(b, kids.filter(function (k) { return k !== null && k !== undefined; })); }

function renderBaseline(list) {
  var b = latest(list, function (x) { return x.finished || x.started; });
  if (!b) return card('baseline-card', [h('div', 'muted', ['none taken'])]);
  var kind = b.state === 'done' ? 'ok' : b.state === 'failed' ? 'bad' : 'info';
  card('baseline-card', [h('div', null, [badge(b.state, kind), h('span', 'name', [b.name])]),
    h('div', null, [count(b.objects) + ' objects, ' + bytes(b.bytes)]),
    h('div', 'muted', [(b.roots || []).join(', '), ' · ', when(b.finished || b.started)]),
    b.error ? h('div', 'muted', [b.error]) : null]);
}

function renderVerify(list) {
  var v = latest(list, function (x) { return x.time; });
  if (!v) return card('verify-card', [h('div', 'muted', ['none run'])]);
  var found = v.equal ? badge('equal', 'ok') : badge(v.differences + ' difference(s)', v.repaired >= v.differences && !v.unsettled ? 'warn' : 'bad');
  card('verify-card', [h('div', null, [found, h('span', 'name', [v.name])]),
    h('div', null, [v.repaired > 0 ? v.repaired + ' repaired' : v.equal ? 'no differences' : 'not repaired', v.unsettled > 0 ? ', ' + v.unsettled + ' kept changing' : '']),
    h('div', 'muted', [(v.roots || []).join(', '), ' · ', when(v.time)])]);
}

function renderPromote(list) {
  var f = latest(list || [], function (x) { return ms(x.at); });
  if (!f) return card('promote-card', [h('div', 'muted', ['never promoted'])]);
  card('promote-card', [h('div', null, [badge('promoted', 'warn'), h('span', 'name', [f.by])]),
    h('div', null, ['journal ' + f.journal + ' fenced at ' + f.e + '.' + f.s]),
    h('div', 'muted', [list.length > 1 ? list.length + ' journals fenced · ' : '', when(f.at)])]);
}

function renderQuarantine(q) {
  q = q || { count: 0, last: [] };
  card('quarantine-card', [h('div', 'num ' + (q.count > 0 ? 'lagn' : 'lag0'), [count(q.count)]), h('div', 'muted', [q.count === 1 ? 'entry set aside' : 'entries set aside'])]);
  $('quarantine-panel').hidden = q.count === 0;
  $('quarantine-list').replaceChildren.apply($('quarantine-list'), q.last.map(function (x) {
    return h('li', null, [h('code', null, [x.file.split('/').pop()]), ' ', x.at ? when(x.at) : null, h('div', null, [x.reason])], x.file);
  }));
}

function renderStandbys(d) {
  var tb = $('standbys').tBodies[0];
  if (d.standbys.length === 0) return tb.replaceChildren(h('tr', null, [h('td', 'empty', ['no standby has committed yet'])]));
  var rows = d.standbys.map(function (x) { return standbyView(x, d.stream); }).sort(function (a, b) { return a.name < b.name ? -1 : 1; });
  tb.replaceChildren.apply(tb, rows.map(function (x) {
    var me = x.name === d.this_standby || x.name.indexOf(d.this_standby + '.') === 0;
    var name = h('td', null, [h('div', 'name', [x.name, ' ', me ? badge('this page', 'me') : null]), h('div', 'host', [dash(x.host), x.journal ? ' · journal ' + x.journal : ''])]);
    var state = td(x.state ? badge(x.state, STATE_KIND[x.state]) : '-', null, 'state');
    var room = '-';
    if (typeof x.max_lag_bytes === 'number' && x.max_lag_bytes > 0) {
      var used = Math.min(100, 100 * (x.lag_bytes || 0) / x.max_lag_bytes);
      var f = h('div', 'fill' + (used >= 80 ? ' bad' : used >= 50 ? ' warn' : ''));
      f.style.width = Math.max(used > 0 ? 2 : 0, used) + '%';
      room = h('div', 'room', [h('div', 'bar', [f]), h('div', 'muted', [bytes(x.safe_bytes) + ' more of ' + bytes(x.max_lag_bytes)])]);
    }
    var notes = [];
    if (x.lost) notes.push(h('div', null, [badge('LOST', 'bad'), 'since ' + clock(ms(x.lost.since)) + ': ' + x.lost.reason]));
    if (x.rebase) notes.push(h('div', null, [badge('recovery ' + x.rebase.state, x.rebase.state === 'failed' ? 'bad' : x.rebase.state === 'done' ? 'ok' : 'info'), dash(x.rebase.step), x.rebase.error ? ' (' + x.rebase.error + ')' : '']));
    if (x.inactive_since) notes.push(h('div', 'muted', ['inactive since ', when(x.inactive_since)]));
    var cp = x.checkpoints;
    if (cp && cp.last_reached) notes.push(h('div', 'checkpoint', [badge('checkpoint ' + cp.last_reached.name, 'ok'), 'reached ', when(cp.last_reached.reached_at), ' · ' + cp.kept + ' kept, ' + bytes(cp.kept_bytes)]));
    if (cp) cp.pending.forEach(function (p) { notes.push(h('div', 'checkpoint', [badge('checkpoint ' + p.name + ' pending', 'info'), 'waiting for ' + (p.waiting_for.join(', ') || 'its journals')])); });
    if (cp) cp.failed.forEach(function (f) { notes.push(h('div', 'checkpoint', [badge('checkpoint ' + f.name + ' failed', 'bad'), f.why])); });
    var tr = h('tr', null, [name, state, td(count(x.committed), 'n', 'committed_seq'), lagCell(x.lag, 'lag_entries'), td(bytes(x.lag_bytes), 'n', 'lag_bytes'),
      td(dash(x.lag_seconds), 'n', 'lag_seconds'), td(room, null, 'room'), td(when(x.last_active), null, 'last_active'), td(notes.length ? h('div', null, notes) : '', null, 'notes')]);
    tr.dataset.standby = x.name;
    return tr;
  }));
}

function renderJournals(d) {
  var tb = $('journals').tBodies[0];
  if (d.journals.length === 0) return tb.replaceChildren(h('tr', null, [h('td', 'empty', ['no journals in this stream yet'])]));
  tb.replaceChildren.apply(tb, d.journals.map(function (r) {
    var marks = [];
    if (r.standby_failing) marks.push(badge('STANDBY FAILING', 'bad', r.standby_failing));
    if (r.stream_refuses) marks.push(badge('THE STREAM REFUSES', 'bad', r.stream_refuses.reason));
    if (r.differs) marks.push(badge('differs', 'bad', r.differs));
    if (r.may_differ) marks.push(badge('MAY DIFFER', 'warn', r.may_differ));
    if (r.dropped) marks.push(badge(r.dropped + ' dropped', 'bad', 'changes the agent could not journal: its spool was full'));
    if (marks.length === 0) marks.push(r.lag_entries === 0 ? badge('up to date', 'ok') : badge('behind', 'info'));
    var hb = typeof r.heartbeat_age_s === 'number' ? Math.max(0, r.heartbeat_age_s) + ' s' : '-';
    var tr = h('tr', null, [td(h('span', 'name', [r.journal]), null, 'journal'), td(dash(r.mode), null, 'mode'), td(count(r.agent_last_seq), 'n', 'agent_last_seq'),
      td(count(r.agent_shipped_seq), 'n', 'agent_shipped_seq'), td(count(r.stream_last_seq), 'n', 'stream_last_seq'), td(count(r.applied_seq), 'n', 'applied_seq'),
      lagCell(r.lag_entries, 'lag_entries'), td(dash(r.lag_seconds), 'n', 'lag_seconds'), td(hb, 'n' + (r.heartbeat_age_s > 10 ? ' lagn' : ''), 'heartbeat_age_s'), td(h('div', null, marks), null, 'marks')]);
    tr.dataset.journal = r.journal;
    return tr;
  }));
}

/** A tick step of 1, 2, 2.5 or 5 times a power of ten (whole when minStep is), so that four steps cover max. */
function step(max, minStep) {
  var raw = Math.max(minStep, max / 4);
  var p = Math.pow(10, Math.floor(Math.log10(raw)));
  return [1, 2, 2.5, 5, 10].map(function (k) { return k * p; })
    .find(function (x) { return x >= raw - 1e-9 && (minStep < 1 || Number.isInteger(x)); });
}

/** One lag chart: a line per name over the samples kept, the newest on the right. */
function chart(key, samples, names, pick, fmt, minStep) {
  var svg = $('chart-' + key), legend = $('legend-' + key);
  var W = 640, H = 180, L = 56, R = 12, T = 10, B = 24;
  var series = names.map(function (n, i) { return { name: n, color: COLORS[i % COLORS.length], pts: points(samples, function (x) { return pick(x, n); }) }; })
    .filter(function (x) { return x.pts.length > 0; });
  var kids = [];
  if (series.length === 0 || samples.length === 0) {
    kids.push(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'none' }, 'no samples yet'));
    svg.replaceChildren.apply(svg, kids);
    legend.replaceChildren();
    return;
  }
  var t1 = samples[samples.length - 1].t, span = Math.max(60000, t1 - samples[0].t), t0 = t1 - span;
  var top = 4 * step(Math.max.apply(null, series.map(function (x) { return Math.max.apply(null, x.pts.map(function (p) { return p[1]; })); })), minStep);
  var X = function (t) { return L + (t - t0) / span * (W - L - R); };
  var Y = function (v) { return T + (1 - v / top) * (H - T - B); };
  for (var i = 0; i <= 4; i++) {
    var v = top * i / 4;
    kids.push(s('line', { x1: L, x2: W - R, y1: Y(v), y2: Y(v), class: 'grid' }));
    kids.push(s('text', { x: L - 8, y: Y(v) + 4, 'text-anchor': 'end' }, fmt(v)));
  }
  var every = [5, 10, 15, 30, 60, 120, 300, 600].find(function (k) { return span / 1000 / k <= 6; }) || 600;
  for (var back = 0; back * 1000 <= span; back += every) {
    var x = X(t1 - back * 1000);
    kids.push(s('text', { x: x, y: H - 8, 'text-anchor': back === 0 ? 'end' : x < L + 20 ? 'start' : 'middle' }, back === 0 ? 'now' : back >= 120 ? '-' + back / 60 + ' min' : '-' + back + ' s'));
  }
  series.forEach(function (x) {
    var xy = x.pts.map(function (p) { return X(p[0]).toFixed(1) + ',' + Y(p[1]).toFixed(1); });
    var line = s('polyline', { points: xy.join(' '), stroke: x.color, 'data-name': x.name, 'data-points': x.pts.length });
    kids.push(line);
    var end = x.pts[x.pts.length - 1];
    kids.push(s('circle', { cx: X(end[0]), cy: Y(end[1]), r: 3.5, fill: x.color }));
  });
  svg.replaceChildren.apply(svg, kids);
  legend.replaceChildren.apply(legend, series.map(function (x) {
    var sw = h('i'); sw.style.background = x.color;
    return h('li', null, [sw, x.name + ' ', h('b', null, [fmt(x.pts[x.pts.length - 1][1])])]);
  }));
}

function renderCharts(d) {
  var samples = d.history || [];
  var names = function (k) {
    var set = {};
    samples.forEach(function (x) { Object.keys(x[k] || {}).forEach(function (n) { set[n] = true; }); });
    return Object.keys(set).sort();
  };
  var ju = units.journals, su = units.standbys;
  chart('journals', samples, names('journals'), function (x, n) { return x.journals[n] && x.journals[n][ju]; }, ju === 'lag_seconds' ? function (v) { return +v.toFixed(1) + ' s'; } : count, ju === 'lag_seconds' ? 0.1 : 1);
  chart('standbys', samples, names('standbys'), function (x, n) { return x.standbys[n] && x.standbys[n][su]; }, su === 'lag_bytes' ? bytes : count, 1);
}

function renderWatchers(list) {
  list = list || [];
  $('watchers-panel').hidden = list.length === 0;
  $('watchers').replaceChildren.apply($('watchers'), list.map(function (w) {
    return h('li', null, [h('span', 'name', [w.name]), ': ' + count(w.journaled) + ' change(s) journaled' + (w.polled > 0 ? ', ' + w.polled + ' directories polled' : '') + ' · reported ', when(w.time)]);
  }));
}

function render(d) {
  last = d;
  renderAlerts(d);
  renderStream(d.stream, d.history || []);
  renderBaseline(d.baselines || []);
  renderVerify(d.verifies || []);
  renderPromote(d.fences || []);
  renderQuarantine(d.quarantine);
  renderStandbys(d);
  renderJournals(d);
  renderCharts(d);
  renderWatchers(d.watchers);
  $('sampled').textContent = clock(ms(d.sampled_at));
}

function say(state, text, banner, warn) {
  var live = $('live');
  live.dataset.state = state;
  $('live-text').textContent = text;
  var b = $('banner');
  b.hidden = !banner;
  b.className = 'banner' + (warn ? ' warn' : '');
  b.textContent = banner || '';
  body.classList.toggle('stale', state === 'not-answering');
}

async function refresh() {
  var ac = new AbortController();
  var timer = setTimeout(function () { ac.abort(); }, TIMEOUT);
  try {
    var res = await fetch('/status.json', { cache: 'no-store', signal: ac.signal });
    var d = await res.json();
    lastAnswer = Date.now();
    if (res.ok) {
      render(d);
      if (d.collect_error) say('degraded', 'reading status fails', 'The replayer answers, but reading the stream\'s status fails since ' + clock(ms(d.collect_error.since)) + ': ' + d.collect_error.message + '. What is shown was read at ' + clock(ms(d.sampled_at)) + '.', true);
      else say('answering', 'live · refreshed ' + clock(lastAnswer), null);
    } else {
      say('degraded', 'cannot read status', 'The replayer answers, but cannot read the stream\'s status: ' + (d.error || res.status), true);
    }
    $('refreshed').textContent = clock(lastAnswer);
  } catch (err) {
    var since = lastAnswer > 0 ? ' Its last answer came at ' + clock(lastAnswer) + '; what is shown is from then.' : '';
    say('not-answering', 'NOT ANSWERING', 'The replayer stopped answering (' + clock(Date.now()) + ': ' + (err && err.name === 'AbortError' ? 'no answer within ' + TIMEOUT / 1000 + ' s' : 'it cannot be reached') + ').' + since + ' Trying again every ' + REFRESH / 1000 + ' s.', false);
  } finally {
    clearTimeout(timer);
    setTimeout(refresh, REFRESH);
  }
}

document.querySelectorAll('.units').forEach(function (group) {
  group.addEventListener('click', function (ev) {
    var b = ev.target.closest('button');
    if (!b) return;
    units[group.dataset.chart] = b.dataset.unit;
    group.querySelectorAll('button').forEach(function (x) { x.classList.toggle('on', x === b); });
    if (last) renderCharts(last);
  });
});
refresh();
})();
`;
