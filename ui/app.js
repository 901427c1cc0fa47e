// The ringkv dashboard: one EventSource on /api/v1/dashboard/events; `init` carries the last few
// minutes and the ring, `tick` (about once a second) the new points and the cluster's state.
import uPlot from './vendor/uPlot.esm.js';
import { drawRing } from './ring.js';

const OPS = ['write', 'read', 'delete', 'scan'];
const OP_COLOURS = { write: '#2563eb', read: '#059669', delete: '#dc2626', scan: '#9333ea' };
const NODE_COLOURS = ['#2563eb', '#f59e0b', '#10b981', '#ef4444', '#8b5cf6', '#06b6d4', '#ec4899', '#84cc16', '#f97316', '#64748b'];
const WINDOW_SECONDS = 300;
const fmt = new Intl.NumberFormat('en-US');
const fmt1 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

const $ = (sel) => document.querySelector(sel);
let points = [];
let ring = null;
let state = null;
const charts = {};

function colourOf(id) {
  const ids = ring ? ring.nodeIds : state ? state.nodes.map((n) => n.id) : [];
  const i = ids.indexOf(id);
  return i < 0 ? '#9ca3af' : NODE_COLOURS[i % NODE_COLOURS.length];
}

function isDown(id) {
  const n = state && state.nodes.find((x) => x.id === id);
  return n ? n.liveness === 'down' : false;
}

function cell(text, cls) {
  const td = document.createElement('td');
  if (cls) td.className = cls;
  td.textContent = text;
  return td;
}

function renderHeader() {
  $('#cluster-name').textContent = state.cluster;
  $('#self').textContent = state.self;
  $('#digest').textContent = state.ringDigest;
}

function renderNodes() {
  const rows = state.nodes.map((n) => {
    const tr = document.createElement('tr');
    tr.dataset.node = n.id;
    tr.dataset.state = n.state;
    if (n.liveness === 'down') tr.className = 'down';
    const sw = document.createElement('td');
    sw.innerHTML = `<span class="swatch" style="background:${colourOf(n.id)}"></span>`;
    tr.append(
      sw,
      cell(n.id + (n.id === state.self ? ' (this node)' : '')),
      cell(n.state, `state ${n.liveness}`),
      cell(n.http),
      cell(fmt.format(n.load), 'num'),
      cell(`${fmt1.format(n.owned * 100)} %`, 'num'),
      cell(String(n.tokens), 'num'),
      cell(fmt.format(n.hints), 'num'),
      cell(n.opsPerSec === null ? '–' : fmt.format(n.opsPerSec), 'num'),
      cell(n.rack),
    );
    return tr;
  });
  $('#nodes tbody').replaceChildren(...rows);
}

function renderRing() {
  if (!ring) return;
  drawRing($('#ring'), ring, colourOf, isDown);
  const owned = new Map(state.nodes.map((n) => [n.id, n.owned]));
  const items = ring.nodeIds.map((id) => {
    const li = document.createElement('li');
    if (isDown(id)) li.className = 'down';
    li.innerHTML = `<span class="swatch" style="background:${colourOf(id)}"></span> `;
    li.append(`${id} ${fmt1.format((owned.get(id) ?? 0) * 100)} %`);
    return li;
  });
  $('#ring-legend').replaceChildren(...items);
}

function bar(label, detail, done, total, active) {
  const row = document.createElement('div');
  row.className = 'row';
  const l = document.createElement('div');
  l.className = 'label';
  l.textContent = label + ' ';
  const small = document.createElement('small');
  small.textContent = detail;
  l.append(small);
  const b = document.createElement('div');
  b.className = active ? 'bar' : 'bar idle';
  const fill = document.createElement('div');
  fill.style.width = `${total > 0 ? Math.min(100, (100 * done) / total) : 0}%`;
  b.append(fill);
  row.append(l, b);
  return row;
}

function empty(text) {
  const d = document.createElement('div');
  d.className = 'empty';
  d.textContent = text;
  return d;
}

function renderWork() {
  const hints = state.hints.map((h) =>
    bar(
      `${h.holder} → ${h.target}`,
      h.replaying ? `${fmt.format(h.sent)} sent, ${fmt.format(h.pending)} pending, ${fmt.format(h.perSecond)}/s` : h.pending > 0 ? `${fmt.format(h.pending)} pending${h.targetUp ? '' : `, ${h.target} down`}` : `done, ${fmt.format(h.sent)} sent`,
      h.sent,
      h.sent + h.pending,
      h.replaying,
    ),
  );
  $('#hints').replaceChildren(...(hints.length ? hints : [empty('no hints held')]));
  const repair = state.repair.map((r) =>
    r.running
      ? bar(r.node, `comparing ${fmt.format(r.pairsDone)} / ${fmt.format(r.pairsTotal)} (range, peer) pairs`, r.pairsDone, r.pairsTotal, true)
      : bar(r.node, r.sessions + r.failedSessions === 0 ? 'no session yet' : `last session ${fmt1.format((r.lastDurationMs ?? 0) / 1000)} s, ${fmt.format(r.lastRangesDiffered ?? 0)} ranges differed`, r.pairsDone, r.pairsTotal, false),
  );
  $('#repair').replaceChildren(...(repair.length ? repair : [empty('no repair reports')]));
  const streams = state.streaming.map((s) =>
    bar(`${s.node} ${s.direction === 'in' ? '←' : '→'} ${s.peer}`, `${s.operation}: ${fmt.format(s.rangesDone)}/${fmt.format(s.rangesTotal)} ranges, ${fmt.format(Math.round(s.bytesDone / 1048576))} of ${fmt.format(Math.round(s.bytesTotal / 1048576))} MiB`, s.bytesDone, s.bytesTotal, true),
  );
  $('#streaming').replaceChildren(...(streams.length ? streams : [empty('no range movements')]));
}

function renderTables() {
  const rows = state.tables.map((t) => {
    const tr = document.createElement('tr');
    tr.append(cell(t.name), cell(t.conflicts), cell(String(t.n), 'num'), cell(t.quorum));
    return tr;
  });
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    const td = cell('no tables yet');
    td.colSpan = 4;
    tr.append(td);
    rows.push(tr);
  }
  $('#tables tbody').replaceChildren(...rows);
}

function chartOptions(host, yFmt) {
  return {
    width: Math.max(300, host.clientWidth),
    height: 220,
    cursor: { drag: { x: false, y: false } },
    // The readouts under each chart show the latest values; uPlot's cursor legend would repeat them.
    legend: { show: false },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [{ stroke: '#6b7785', grid: { stroke: '#eef1f5' }, space: 70, values: (u, splits) => splits.map(clock) }, { stroke: '#6b7785', grid: { stroke: '#eef1f5' }, size: 60, values: (u, vals) => vals.map(yFmt) }],
    series: [{}, ...OPS.map((op) => ({ label: op, stroke: OP_COLOURS[op], width: 2, points: { show: false }, spanGaps: false }))],
  };
}

const clockFmt = new Intl.DateTimeFormat([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
function clock(sec) {
  return clockFmt.format(new Date(sec * 1000));
}

function chartData(key) {
  const xs = points.map((p) => p.sec);
  return [xs, ...OPS.map((op) => points.map((p) => (p.ops[op] ? p.ops[op][key] : key === 'rate' ? 0 : null)))];
}

function renderCharts() {
  for (const [id, key, yFmt] of [
    ['throughput', 'rate', (v) => fmt.format(v)],
    ['latency', 'p99Ms', (v) => fmt1.format(v)],
  ]) {
    const host = $(`#${id}`);
    const data = chartData(key);
    if (!charts[id]) charts[id] = new uPlot(chartOptions(host, yFmt), data, host);
    else charts[id].setData(data);
    // Only the operations that had requests in the window get a line.
    OPS.forEach((op, i) => {
      const seen = points.some((p) => p.ops[op] && p.ops[op].rate > 0);
      if (charts[id].series[i + 1].show !== seen) charts[id].setSeries(i + 1, { show: seen });
    });
    let max = 0;
    for (let s = 1; s < data.length; s++) for (const v of data[s]) if (v !== null && v > max) max = v;
    host.dataset.max = String(max);
    host.dataset.points = String(points.length);
  }
  const last = points[points.length - 1];
  const now = (key, unit) =>
    OPS.filter((op) => last && last.ops[op])
      .map((op) => `<span><span class="swatch" style="background:${OP_COLOURS[op]}"></span> ${op} <b>${key === 'rate' ? fmt.format(last.ops[op].rate) : last.ops[op].p99Ms === null ? '–' : fmt1.format(last.ops[op].p99Ms)}</b> ${unit}</span>`)
      .join('') || '<span>idle</span>';
  $('#throughput-now').innerHTML = now('rate', 'req/s');
  $('#latency-now').innerHTML = now('p99Ms', 'ms');
}

function render() {
  renderHeader();
  renderNodes();
  renderRing();
  renderWork();
  renderTables();
  renderCharts();
}

function setConn(cls, text) {
  const c = $('#conn');
  c.className = `conn ${cls}`;
  c.textContent = text;
}

const events = new EventSource('/api/v1/dashboard/events');
events.addEventListener('init', (e) => {
  const d = JSON.parse(e.data);
  points = d.points;
  ring = d.ring;
  state = d;
  setConn('live', 'live');
  render();
});
events.addEventListener('tick', (e) => {
  const d = JSON.parse(e.data);
  points.push(...d.points);
  if (points.length > WINDOW_SECONDS) points.splice(0, points.length - WINDOW_SECONDS);
  if (d.ring) ring = d.ring;
  state = d;
  setConn('live', 'live');
  render();
});
events.onerror = () => setConn('lost', 'reconnecting…');

window.addEventListener('resize', () => {
  for (const [id, u] of Object.entries(charts)) u.setSize({ width: Math.max(300, $(`#${id}`).clientWidth), height: 220 });
});
