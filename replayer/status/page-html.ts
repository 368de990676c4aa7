import { DEFAULTS } from '../../lib/settings';

/** What the page is told by its server: its settings ride on data- attributes (the CSP allows no inline script). */
export interface PageSettings {
  stream: string;
  standby: string;
  refreshMs: number;
  answerTimeoutMs: number;
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The status page's HTML: a frame that /page.js fills from /status.json. */
export function pageHtml(s: PageSettings): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>understudy · ${esc(s.stream)} · ${esc(s.standby)}</title>
<link rel="stylesheet" href="/page.css">
<script src="/page.js" defer></script>
</head>
<body data-refresh-ms="${s.refreshMs}" data-answer-timeout-ms="${s.answerTimeoutMs}" data-warn-pct="${DEFAULTS.streamWarnPct}">
<header>
  <div class="brand"><span class="logo">understudy</span>
    <span class="where">stream <b id="stream-name">${esc(s.stream)}</b> · served by standby <b id="this-standby">${esc(s.standby)}</b></span></div>
  <div id="live" class="live" data-state="connecting"><span class="dot"></span><span id="live-text">connecting…</span></div>
</header>
<div id="banner" class="banner" hidden></div>
<main>
  <ul id="alerts" class="alerts"></ul>
  <section class="cards">
    <div class="card wide" id="stream-card"><h2>Stream</h2>
      <div class="bar"><div id="stream-fill" class="fill"></div></div>
      <div id="stream-text" class="big">-</div><div id="stream-more" class="muted">-</div>
      <svg id="stream-spark" class="spark" viewBox="0 0 300 36" preserveAspectRatio="none"></svg></div>
    <div class="card" id="baseline-card"><h2>Last baseline</h2><div class="body">-</div></div>
    <div class="card" id="verify-card"><h2>Last verify</h2><div class="body">-</div></div>
    <div class="card" id="promote-card"><h2>Last promote</h2><div class="body">-</div></div>
    <div class="card" id="quarantine-card"><h2>Quarantined</h2><div class="body">-</div></div>
  </section>
  <section class="panel"><h2>Standbys</h2>
    <table id="standbys"><thead><tr><th>standby</th><th>state</th><th class="n">committed</th><th class="n">lag</th><th class="n">lag bytes</th><th class="n">lag s</th><th>room before lost</th><th>last active</th><th>notes</th></tr></thead><tbody></tbody></table></section>
  <section class="charts">
    <div class="panel"><div class="chart-head"><h2>Journal lag</h2><span class="units" data-chart="journals"><button data-unit="lag_entries" class="on">entries</button><button data-unit="lag_seconds">seconds</button></span></div>
      <svg id="chart-journals" class="chart" viewBox="0 0 640 180"></svg><ul id="legend-journals" class="legend"></ul></div>
    <div class="panel"><div class="chart-head"><h2>Standby lag</h2><span class="units" data-chart="standbys"><button data-unit="lag_entries" class="on">entries</button><button data-unit="lag_bytes">bytes</button></span></div>
      <svg id="chart-standbys" class="chart" viewBox="0 0 640 180"></svg><ul id="legend-standbys" class="legend"></ul></div>
  </section>
  <section class="panel"><h2>Journals</h2>
    <table id="journals"><thead><tr><th>journal</th><th>mode</th><th class="n">spooled</th><th class="n">shipped</th><th class="n">in stream</th><th class="n">applied</th><th class="n">lag</th><th class="n">lag s</th><th class="n">heartbeat</th><th>standby</th></tr></thead><tbody></tbody></table></section>
  <section class="panel" id="quarantine-panel" hidden><h2>Last quarantined entries</h2><ul id="quarantine-list" class="plain"></ul></section>
  <section class="panel" id="watchers-panel" hidden><h2>Watchers</h2><ul id="watchers" class="plain"></ul></section>
</main>
<footer>refreshed <span id="refreshed">-</span> · data read <span id="sampled">-</span> · every ${s.refreshMs / 1000} s · <a href="/status.json">status.json</a> · the same as <code>understudy status</code></footer>
</body>
</html>
`;
}

/** The page's style: one small sheet, served by understudy like the rest. */
export const PAGE_CSS: string = `
:root { --bg: #f4f6f9; --card: #fff; --ink: #1d2433; --muted: #6b7385; --line: #e3e7ee;
  --ok: #1f9d55; --ok-bg: #e3f6ea; --info: #2563eb; --info-bg: #e3ecfd; --warn: #b76e00; --warn-bg: #fff2d6;
  --bad: #c8262c; --bad-bg: #fde4e4; --off: #6b7385; --off-bg: #eceef2; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header { display: flex; align-items: center; justify-content: space-between; padding: 14px 24px; background: #162033; color: #e8edf6; }
.logo { font-weight: 700; font-size: 18px; letter-spacing: .3px; margin-right: 14px; }
.where { color: #aab5c8; } .where b { color: #fff; font-weight: 600; }
.live { display: flex; align-items: center; gap: 8px; font-size: 13px; padding: 4px 12px; border-radius: 999px; background: rgba(255,255,255,.08); }
.live .dot { width: 9px; height: 9px; border-radius: 50%; background: #8a94a6; }
.live[data-state=answering] .dot { background: #34d27b; box-shadow: 0 0 0 3px rgba(52,210,123,.25); }
.live[data-state=degraded] .dot { background: #f5b70a; }
.live[data-state=not-answering] { background: var(--bad); color: #fff; font-weight: 600; }
.live[data-state=not-answering] .dot { background: #fff; }
.banner { margin: 0; padding: 12px 24px; font-weight: 600; background: var(--bad); color: #fff; }
.banner.warn { background: var(--warn-bg); color: var(--warn); border-bottom: 1px solid #f0d9a6; }
body.stale main { opacity: .55; filter: grayscale(.6); }
main { padding: 16px 24px 6px; display: flex; flex-direction: column; gap: 14px; }
h2 { font-size: 12px; text-transform: uppercase; letter-spacing: .6px; color: var(--muted); margin: 0 0 8px; font-weight: 600; }
.cards { display: grid; grid-template-columns: 2fr 1fr 1fr 1fr 1fr; gap: 14px; }
.card, .panel { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 12px 16px; box-shadow: 0 1px 2px rgba(16,24,40,.04); min-width: 0; }
.card .body { overflow-wrap: anywhere; }
.big { font-size: 20px; font-weight: 650; margin-top: 6px; }
.num { font-size: 26px; font-weight: 700; }
.muted { color: var(--muted); font-size: 12.5px; }
.bar { height: 12px; border-radius: 6px; background: var(--off-bg); overflow: hidden; }
.fill { height: 100%; width: 0; background: var(--ok); border-radius: 6px; }
.fill.warn { background: #e6a100; } .fill.bad { background: var(--bad); }
.spark { width: 100%; height: 30px; margin-top: 6px; display: block; }
.spark polyline { fill: none; stroke: var(--info); stroke-width: 1.5; vector-effect: non-scaling-stroke; }
.spark polygon { fill: var(--info-bg); stroke: none; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th { text-align: left; font-weight: 600; color: var(--muted); font-size: 12px; padding: 6px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
td { padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
tr:last-child td { border-bottom: none; }
.n { text-align: right; }
td.empty { color: var(--muted); text-align: center; padding: 14px; }
.name { font-weight: 600; } .host { color: var(--muted); font-size: 12px; } .card .name { margin-left: 2px; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 12px; font-weight: 600; white-space: nowrap; background: var(--off-bg); color: var(--off); margin: 0 4px 2px 0; }
.badge.ok { background: var(--ok-bg); color: var(--ok); } .badge.info { background: var(--info-bg); color: var(--info); }
.badge.warn { background: var(--warn-bg); color: var(--warn); } .badge.bad { background: var(--bad-bg); color: var(--bad); }
.badge.me { background: #162033; color: #fff; font-weight: 500; }
.lag0 { color: var(--ok); } .lagn { color: var(--warn); font-weight: 600; }
.room { min-width: 140px; } .room .bar { height: 7px; margin: 5px 0 2px; }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
.chart-head { display: flex; justify-content: space-between; align-items: baseline; }
.units button { font: inherit; font-size: 12px; border: 1px solid var(--line); background: var(--card); color: var(--muted); padding: 1px 9px; cursor: pointer; }
.units button:first-child { border-radius: 6px 0 0 6px; } .units button:last-child { border-radius: 0 6px 6px 0; border-left: none; }
.units button.on { background: var(--info-bg); color: var(--info); border-color: #bcd0fb; }
.chart { width: 100%; height: auto; display: block; }
.chart .grid { stroke: var(--line); stroke-width: 1; }
.chart text { fill: var(--muted); font-size: 11px; }
.chart polyline { fill: none; stroke-width: 2; stroke-linejoin: round; stroke-linecap: round; }
.chart .none { font-size: 13px; }
.legend { list-style: none; display: flex; flex-wrap: wrap; gap: 4px 16px; margin: 6px 0 0; padding: 0; font-size: 12.5px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 3px; margin-right: 6px; vertical-align: -1px; }
.alerts { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 8px; }
.alerts:empty { display: none; }
.alerts li { padding: 9px 14px; border-radius: 8px; border: 1px solid; overflow-wrap: anywhere; }
.alerts li.bad { background: var(--bad-bg); color: #8c1419; border-color: #f5bcbc; }
.alerts li.warn { background: var(--warn-bg); color: #7a4a00; border-color: #f0d9a6; }
.alerts b { font-weight: 700; }
.plain { list-style: none; margin: 0; padding: 0; } .plain li { padding: 5px 0; border-bottom: 1px solid var(--line); overflow-wrap: anywhere; } .plain li:last-child { border: none; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
footer { padding: 8px 24px 20px; color: var(--muted); font-size: 12.5px; }
footer a { color: var(--info); }
@media (max-width: 1000px) { .cards { grid-template-columns: 1fr 1fr; } .card.wide { grid-column: span 2; } .charts { grid-template-columns: 1fr; } }
`;
