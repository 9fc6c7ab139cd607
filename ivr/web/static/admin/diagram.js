// The diagram: a layered layout (left to right) of the flow's nodes and edges, drawn as SVG. The server parses the
// flow (POST .../validate returns its nodes and edges); this module only lays it out and draws it.

import { byTestId } from '../lib/dom.js';

const NODE_W = 136;
const NODE_H = 46;
const DUMMY_H = 12;
const GAP_X = 100;
const GAP_Y = 18;
const MIN_SCALE = 0.75; // below this the diagram scrolls instead of shrinking further

/** Columns by longest path from the start (edges that close a cycle are drawn backwards), rows by barycenter. */
export function layout(graph) {
  const ids = graph.nodes.map((n) => n.id);
  const known = new Set(ids);
  const edges = graph.edges.filter((e) => known.has(e.from) && known.has(e.to));
  const out = new Map(ids.map((id) => [id, []]));
  for (const e of edges) out.get(e.from).push(e.to);

  // Depth-first from the start (then any node not reached): back edges close cycles.
  const seen = new Map();
  const post = [];
  const back = new Set();
  const visit = (root) => {
    const stack = [[root, 0]];
    seen.set(root, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [id, i] = top;
      const targets = out.get(id);
      if (i < targets.length) {
        top[1] += 1;
        const t = targets[i];
        if (seen.get(t) === 1) back.add(`${id}\u0000${t}`);
        else if (!seen.has(t)) {
          seen.set(t, 1);
          stack.push([t, 0]);
        }
      } else {
        seen.set(id, 2);
        post.push(id);
        stack.pop();
      }
    }
  };
  for (const id of [graph.start, ...ids]) if (id && known.has(id) && !seen.has(id)) visit(id);
  const isBack = (e) => back.has(`${e.from}\u0000${e.to}`) || e.from === e.to;

  const topo = [...post].reverse();
  const layer = new Map(ids.map((id) => [id, 0]));
  for (const id of topo) {
    for (const e of edges) {
      if (e.from === id && !isBack(e)) layer.set(e.to, Math.max(layer.get(e.to), layer.get(id) + 1));
    }
  }

  // Long forward edges get a waypoint in every column they cross, so they bend around the boxes there.
  const items = new Map(ids.map((id) => [id, { id, layer: layer.get(id), h: NODE_H, node: true }]));
  const chains = edges.map((e) => {
    const chain = [e.from];
    if (!isBack(e)) {
      for (let l = layer.get(e.from) + 1; l < layer.get(e.to); l += 1) {
        const id = `\u0000${e.from}>${e.to}@${l}`;
        items.set(id, { id, layer: l, h: DUMMY_H, node: false });
        chain.push(id);
      }
    }
    chain.push(e.to);
    return { edge: e, chain, back: isBack(e) };
  });
  const columns = [];
  const order = topo.concat([...items.keys()].filter((id) => !known.has(id)));
  for (const id of order) {
    const item = items.get(id);
    (columns[item.layer] ||= []).push(id);
  }
  for (let l = 0; l < columns.length; l += 1) columns[l] ||= [];

  // Barycenter sweeps: each column ordered by the mean position of its neighbours in the previous one.
  const prev = new Map();
  const next = new Map();
  for (const { chain, back: isB } of chains) {
    if (isB) continue;
    for (let i = 0; i + 1 < chain.length; i += 1) {
      (next.get(chain[i]) || next.set(chain[i], []).get(chain[i])).push(chain[i + 1]);
      (prev.get(chain[i + 1]) || prev.set(chain[i + 1], []).get(chain[i + 1])).push(chain[i]);
    }
  }
  const position = new Map();
  const index = () => columns.forEach((col) => col.forEach((id, i) => position.set(id, i)));
  index();
  const sweep = (cols, neighbours) => {
    for (const col of cols) {
      const key = new Map(col.map((id, i) => {
        const ns = neighbours.get(id) || [];
        return [id, ns.length ? ns.reduce((s, n) => s + position.get(n), 0) / ns.length : i];
      }));
      col.sort((a, b) => key.get(a) - key.get(b));
      col.forEach((id, i) => position.set(id, i));
    }
  };
  for (let round = 0; round < 4; round += 1) {
    sweep(columns.slice(1), prev);
    sweep(columns.slice(0, -1).reverse(), next);
  }

  // Coordinates: columns left to right, each centred on the tallest.
  const heightOf = (col) => col.reduce((s, id) => s + items.get(id).h, 0) + GAP_Y * Math.max(0, col.length - 1);
  const tallest = Math.max(NODE_H, ...columns.map(heightOf));
  const at = new Map();
  columns.forEach((col, l) => {
    let y = (tallest - heightOf(col)) / 2;
    for (const id of col) {
      const item = items.get(id);
      at.set(id, { x: l * (NODE_W + GAP_X), y, h: item.h });
      y += item.h + GAP_Y;
    }
  });
  return { at, chains, width: columns.length * NODE_W + (columns.length - 1) * GAP_X, height: tallest };
}

function svgEl(svg, tag, attrs = {}, text = null) {
  const node = document.createElementNS(svg.namespaceURI, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined) continue;
    if (key === 'testid') node.dataset.testid = value;
    else node.setAttribute(key, String(value));
  }
  if (text !== null) node.textContent = text;
  return node;
}

/** Cut `text` to about `px` pixels at `size` px (CJK characters count double). */
function clip(text, px, size) {
  let width = 0;
  let out = '';
  for (const ch of String(text)) {
    width += (ch.codePointAt(0) > 0x1100 ? 1.0 : 0.58) * size;
    if (width > px) return `${out.trimEnd()}…`;
    out += ch;
  }
  return out;
}

/**
 * Draws `graph` into the flow-diagram SVG: fitted to its box, or at 100% when `zoomed`. onNodeActivate(id) runs on
 * a click (or Enter) on a node.
 */
export function drawDiagram(graph, { zoomed = false, onNodeActivate = () => {} } = {}) {
  const svg = byTestId('flow-diagram');
  const { at, chains, width, height } = layout(graph);
  const pad = 14;
  const W = width + pad * 2 + 26;
  const H = height + pad * 2;
  const wrap = svg.parentElement;
  const fit = Math.min(1, ((wrap.clientWidth || W) - 16) / W);
  const scale = zoomed ? 1 : Math.max(MIN_SCALE, fit);
  const zoom = byTestId('diagram-zoom');
  zoom.hidden = fit >= 1;
  zoom.textContent = zoomed ? 'Fit' : '100%';
  zoom.setAttribute('aria-pressed', zoomed ? 'true' : 'false');
  svg.setAttribute('viewBox', `${-pad - 26} ${-pad} ${W} ${H}`);
  svg.setAttribute('width', String(Math.round(W * scale)));
  svg.setAttribute('height', String(Math.round(H * scale)));
  const nodes = new Map(graph.nodes.map((n) => [n.id, n]));

  const defs = svgEl(svg, 'defs');
  for (const [id, cls] of [['arrow', 'arrow'], ['arrow-bad', 'arrow arrow-bad']]) {
    const marker = svgEl(svg, 'marker', { id: `dg-${id}`, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
    marker.append(svgEl(svg, 'path', { d: 'M0,0 L10,5 L0,10 z', class: cls }));
    defs.append(marker);
  }
  const edgeLayer = svgEl(svg, 'g', { class: 'dg-edges' });
  const labelLayer = svgEl(svg, 'g', { class: 'dg-labels' });
  const nodeLayer = svgEl(svg, 'g', { class: 'dg-nodes' });

  for (const { edge, chain, back } of chains) {
    const source = at.get(edge.from);
    const target = at.get(edge.to);
    const bad = nodes.get(edge.to) && nodes.get(edge.to).type === 'missing';
    let d;
    let label;
    if (back) {
      // Backwards (a loop): out of the bottom of the source, round under, into the bottom of the target.
      const sx = source.x + NODE_W / 2;
      const tx = target.x + NODE_W / 2 + 12;
      const low = Math.max(source.y + NODE_H, target.y + NODE_H) + 36;
      d = `M${sx},${source.y + NODE_H} C${sx},${low} ${tx},${low} ${tx},${target.y + NODE_H}`;
      label = { x: (sx + tx) / 2, y: low - 4, anchor: 'middle' };
    } else {
      // Right side of the source, through each waypoint's column (straight across), into the target's left side.
      let from = { x: source.x + NODE_W, y: source.y + source.h / 2 };
      d = `M${from.x},${from.y}`;
      for (let i = 1; i < chain.length; i += 1) {
        const p = at.get(chain[i]);
        const to = { x: p.x, y: p.y + p.h / 2 };
        const dx = (to.x - from.x) / 2;
        d += ` C${from.x + dx},${from.y} ${to.x - dx},${to.y} ${to.x},${to.y}`;
        // The label ends just before the first column the edge enters: the fan of edges is widest there.
        if (i === 1) label = { x: to.x - 9, y: to.y - 5, anchor: 'end' };
        from = { x: p.x + NODE_W, y: to.y };
        if (i < chain.length - 1) d += ` L${from.x},${from.y}`;
      }
    }
    edgeLayer.append(svgEl(svg, 'path', {
      d, class: `dg-edge${bad ? ' is-bad' : ''}${back ? ' is-back' : ''}`, 'marker-end': `url(#dg-${bad ? 'arrow-bad' : 'arrow'})`,
      testid: 'diagram-edge', 'data-from': edge.from, 'data-to': edge.to, 'data-label': edge.label || '',
    }));
    if (edge.label) {
      // Several intents on one edge ("password · 5, agent · 0"): one line each, stacked upwards.
      const lines = edge.label.split(', ').map((part) => clip(part, GAP_X - 14, 10.5));
      const text = svgEl(svg, 'text', { class: `dg-label${bad ? ' is-bad' : ''}`, 'text-anchor': label.anchor, testid: 'diagram-label' });
      lines.forEach((line, i) => text.append(svgEl(svg, 'tspan', { x: label.x, y: label.y - (lines.length - 1 - i) * 12 }, line)));
      text.append(svgEl(svg, 'title', {}, `${edge.from} → ${edge.to}: ${edge.label}`));
      labelLayer.append(text);
    }
  }

  for (const node of graph.nodes) {
    const p = at.get(node.id);
    const g = svgEl(svg, 'g', {
      class: `dg-node t-${String(node.type).replace(/[^\w-]/g, '')}${node.error ? ' has-error' : ''}${node.start ? ' is-start' : ''}`,
      transform: `translate(${p.x},${p.y})`, testid: `diagram-node-${node.id}`,
      'data-type': node.type, 'data-error': node.error ? 'true' : 'false', tabindex: '0', role: 'button',
      'aria-label': `${node.id}, ${node.type}: ${node.label}`,
    });
    g.append(svgEl(svg, 'title', {}, `${node.id} (${node.type})\n${node.label}`));
    g.append(svgEl(svg, 'rect', { class: 'dg-box', width: NODE_W, height: NODE_H, rx: 7 }));
    g.append(svgEl(svg, 'rect', { class: 'dg-stripe', width: 5, height: NODE_H - 2, x: 1, y: 1, rx: 3 }));
    g.append(svgEl(svg, 'text', { class: 'dg-id', x: 14, y: 19 }, clip(node.id, NODE_W - 24, 12)));
    g.append(svgEl(svg, 'text', { class: 'dg-sub', x: 14, y: 35 }, clip(node.label, NODE_W - 22, 10.5)));
    if (node.start) {
      g.append(svgEl(svg, 'path', { class: 'dg-start', d: `M-22,${NODE_H / 2} L-4,${NODE_H / 2}`, 'marker-end': 'url(#dg-arrow)' }));
      g.append(svgEl(svg, 'circle', { class: 'dg-start-dot', cx: -24, cy: NODE_H / 2, r: 4 }));
    }
    const go = () => onNodeActivate(node.id);
    g.addEventListener('click', go);
    g.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        go();
      }
    });
    nodeLayer.append(g);
  }
  svg.replaceChildren(defs, edgeLayer, nodeLayer, labelLayer);
  const count = graph.nodes.filter((n) => n.type !== 'missing').length;
  const missing = graph.nodes.length - count;
  byTestId('diagram-summary').textContent = `${count} nodes, ${graph.edges.length} edges`
    + (missing ? ` · ${missing} missing` : '') + (graph.partial ? ' · drawn from a flow with errors' : '');
}
