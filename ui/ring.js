// The ring as an SVG circle: each token a dot, each range (previous token, token] an arc in the
// colour of the node whose token ends it (its primary replica). Angles start at the top, clockwise.
const SVG = 'http://www.w3.org/2000/svg';
const TWO32 = 4294967296;

function el(name, attrs) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

/** Fraction of the way round the ring of a token given as [hi, lo] 32-bit words. */
export function turnOf(hi, lo) {
  return (hi + lo / TWO32) / TWO32;
}

function point(cx, cy, r, turn) {
  const a = turn * 2 * Math.PI - Math.PI / 2;
  return [cx + r * Math.cos(a), cy + r * Math.sin(a)];
}

/**
 * Draw `ring` ({nodeIds, tokens: [[hi, lo, owner]]}) into `host`. `colour(id)` gives a node's colour,
 * `isDown(id)` fades its ranges.
 */
export function drawRing(host, ring, colour, isDown) {
  const size = 320;
  const c = size / 2;
  const r = 128;
  const svg = el('svg', { viewBox: `0 0 ${size} ${size}`, role: 'img', 'data-tokens': ring.tokens.length, 'data-digest': ring.digest });
  svg.append(el('circle', { cx: c, cy: c, r, fill: 'none', stroke: '#e5e7eb', 'stroke-width': 22 }));
  const n = ring.tokens.length;
  for (let i = 0; i < n; i++) {
    const [hi, lo, owner] = ring.tokens[i];
    const [phi, plo] = ring.tokens[(i + n - 1) % n];
    const id = ring.nodeIds[owner];
    const t0 = turnOf(phi, plo);
    let t1 = turnOf(hi, lo);
    if (n === 1 || t1 <= t0) t1 += 1;
    const span = Math.min(t1 - t0, 0.999999);
    const [x0, y0] = point(c, c, r, t0);
    const [x1, y1] = point(c, c, r, t0 + span);
    const arc = el('path', {
      d: `M ${x0} ${y0} A ${r} ${r} 0 ${span > 0.5 ? 1 : 0} 1 ${x1} ${y1}`,
      fill: 'none',
      stroke: colour(id),
      'stroke-width': 22,
      opacity: isDown(id) ? 0.25 : 0.9,
      class: 'range',
    });
    arc.append(el('title', {}));
    arc.lastChild.textContent = `${id}: range ending at token ${hi.toString(16).padStart(8, '0')}${lo.toString(16).padStart(8, '0')}`;
    svg.append(arc);
  }
  for (const [hi, lo, owner] of ring.tokens) {
    const [x, y] = point(c, c, r + 17, turnOf(hi, lo));
    const [xi, yi] = point(c, c, r - 11, turnOf(hi, lo));
    svg.append(el('line', { x1: xi, y1: yi, x2: x, y2: y, stroke: '#374151', 'stroke-width': 1, opacity: 0.35 }));
    svg.append(el('circle', { cx: x, cy: y, r: 4, fill: colour(ring.nodeIds[owner]), stroke: '#fff', 'stroke-width': 1.2, class: 'token', 'data-node': ring.nodeIds[owner] }));
  }
  const big = el('text', { x: c, y: c - 4, 'text-anchor': 'middle', 'font-size': 30, 'font-weight': 700, fill: '#1f2933' });
  big.textContent = String(n);
  const small = el('text', { x: c, y: c + 20, 'text-anchor': 'middle', 'font-size': 13, fill: '#6b7785' });
  small.textContent = `tokens · ${ring.nodeIds.length} node${ring.nodeIds.length === 1 ? '' : 's'}`;
  svg.append(big, small);
  host.replaceChildren(svg);
}
