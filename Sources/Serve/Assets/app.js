// nsinspect serve: the namespace graph (d3 v3 force layout), a namespace's details, traces, live updates.
"use strict";

const $ = (selector) => document.querySelector(selector);
const enc = encodeURIComponent;

// Builds DOM; text always goes in as text, so names read from the kernel are never parsed as HTML.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) if (c != null && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}

// The server's errors are {"error": "…"}; anything else still becomes a readable line.
function errorText(res, text) {
  try { return JSON.parse(text).error || `${res.status} ${res.statusText}`; }
  catch (_) { return `${res.status} ${res.statusText} ${text.slice(0, 200)}`; }
}

async function getJSON(url) {
  const res = await fetch(url, { cache: "no-store" });
  const text = await res.text();
  if (!res.ok) throw new Error(errorText(res, text));
  return JSON.parse(text);
}

// ---------------------------------------------------------------- graph

const svg = d3.select("#graph");
const zoomLayer = svg.append("g");
const edgeLayer = zoomLayer.append("g");
const labelLayer = zoomLayer.append("g");
const nodeLayer = zoomLayer.append("g");
const zoom = d3.behavior.zoom().scaleExtent([0.2, 4])
  .on("zoom", () => zoomLayer.attr("transform", `translate(${d3.event.translate})scale(${d3.event.scale})`));
svg.call(zoom).on("dblclick.zoom", null);

let model = { nodes: [], links: [] };
let nodesById = new Map(); // kept across reloads: a node keeps its object, so its position survives
let selected = null;       // the namespace shown in #details
let onPath = null;         // what the shown trace crossed: {ns: Set, ends: Set, drops: Set}

const force = d3.layout.force()
  .charge(-900).gravity(0.05).friction(0.85)
  // Long enough for both nodes' boxes and the interface names written along the edge.
  .linkDistance((l) => (l.source.hw || 40) + (l.target.hw || 40) + 6.6 * ((l.la || "").length + (l.lb || "").length) + 50)
  .linkStrength((l) => (l.bridged ? 0 : 1)) // a bridged veth's port edge places it
  .on("tick", draw);
// A dragged node must not also pan the view.
const drag = force.drag().on("dragstart", () => d3.event.sourceEvent.stopPropagation());

function sizeGraph() {
  const box = svg.node().getBoundingClientRect();
  force.size([box.width || 800, box.height || 600]);
}
window.addEventListener("resize", () => { sizeGraph(); force.resume(); });

const endKey = (e) => `${e.netns}:${e.ifname}`;

// graph --json (+ list --json) → nodes and links; nodes already drawn are reused (same object, same x/y).
function buildModel(g, list) {
  const byId = new Map(), links = [];
  const node = (id, props) => {
    let n = byId.get(id);
    if (!n) { n = Object.assign(nodesById.get(id) || { id }, props); byId.set(id, n); }
    return n;
  };
  // Any namespace an edge names gets a node, even if "namespaces" lacks it.
  const nsNode = (name) => node("ns:" + name, { kind: "ns", key: name, label: name, isolated: false });
  for (const ns of g.namespaces || []) nsNode(ns.netns).interfaces = ns.interfaces || [];
  // graph --json leaves out namespaces with nothing wired (a fresh `ip netns add`, often the host):
  // list --json has every one; those the graph lacks (by inode) are drawn apart, under their reference.
  const wired = new Set((g.namespaces || []).map((ns) => ns.ns));
  for (const ns of (list && list.namespaces) || []) {
    if (wired.has(ns.ns) || byId.has("ns:" + ns.reference) || (ns.type && ns.type !== "net")) continue;
    Object.assign(nsNode(ns.reference), { isolated: true, interfaces: ns.interfaces || [] });
  }
  // A veth with an end in a bridge or switch is drawn faint and unlabelled: the port's edge shows it.
  const ports = new Set([...(g.bridges || []), ...(g.switches || [])].flatMap((b) => (b.ports || []).map((p) => `${b.netns}:${p.ifname}`)));
  for (const v of g.veths || []) {
    const bridged = ports.has(endKey(v.a)) || ports.has(endKey(v.b));
    links.push({ kind: "veth", id: `veth:${endKey(v.a)}|${endKey(v.b)}`, source: nsNode(v.a.netns), target: nsNode(v.b.netns),
      a: endKey(v.a), b: endKey(v.b), la: bridged ? "" : v.a.ifname, lb: bridged ? "" : v.b.ifname, bridged });
  }
  // A bridge or switch: its ports' edges, plus a faint "home" edge to its own namespace when no port
  // edge already goes there (so it is drawn next to the namespace that holds it).
  const hub = (n, netns, ports, attr) => {
    let home = false;
    for (const p of ports || []) {
      if (!p.peer) continue;
      home = home || p.peer.netns === netns;
      links.push({ kind: "port", id: `port:${n.id}:${p.ifname}`, source: n, target: nsNode(p.peer.netns),
        a: `${netns}:${p.ifname}`, b: endKey(p.peer), la: p.ifname, lb: p.peer.ifname, hub: [attr, n.key] });
    }
    if (!home) links.push({ kind: "home", id: "home:" + n.id, source: n, target: nsNode(netns), la: "", lb: "" });
  };
  for (const b of g.bridges || []) {
    const key = `${b.netns}:${b.ifname}`;
    hub(node("bridge:" + key, { kind: "bridge", key, label: `${b.ifname} (bridge in ${b.netns})` }), b.netns, b.ports, "data-bridge");
  }
  for (const s of g.switches || []) {
    // An unmanaged switch has no name: it is known by its namespace.
    const key = `${s.kind}:${s.name || s.netns}`;
    const label = `${s.name || "unnamed"} (${s.kind === "openvswitch" ? "Open vSwitch" : s.kind} switch in ${s.netns})`;
    hub(node("switch:" + key, { kind: "switch", key, label }), s.netns, s.ports, "data-switch");
  }
  // vlan/macvlan/… whose parent is in another namespace: worth an edge, the rest is inside one node.
  for (const s of g.stacked || []) {
    if (!s.parent || s.parent.netns === s.child.netns) continue;
    links.push({ kind: "stacked", id: `stacked:${endKey(s.child)}`, source: nsNode(s.child.netns), target: nsNode(s.parent.netns),
      a: endKey(s.child), b: endKey(s.parent), la: `${s.child.ifname} (${s.kind})`, lb: s.parent.ifname });
  }
  // Parallel edges between the same two nodes get sideways offsets so each stays visible.
  const groups = new Map();
  for (const l of links) {
    const k = [l.source.id, l.target.id].sort().join("|");
    groups.set(k, (groups.get(k) || []).concat(l));
  }
  for (const group of groups.values()) group.forEach((l, i) => { l.index = i; l.offset = (i - (group.length - 1) / 2) * 16; });

  // First drawing: nodes start on a circle in breadth-first order, so a chain or tree starts
  // untangled. Later, a new node starts next to a node it is linked to.
  const nodes = [...byId.values()];
  const [w, h] = force.size();
  if (nodes.every((n) => n.x == null)) {
    const order = [], seen = new Set();
    for (const root of nodes) {
      for (let queue = [root]; queue.length;) {
        const n = queue.shift();
        if (seen.has(n)) continue;
        seen.add(n);
        order.push(n);
        for (const l of links) if (l.source === n || l.target === n) queue.push(l.source === n ? l.target : l.source);
      }
    }
    const r = 60 + 30 * order.length;
    order.forEach((n, i) => {
      n.x = n.px = w / 2 + r * Math.cos((2 * Math.PI * i) / order.length);
      n.y = n.py = h / 2 + r * Math.sin((2 * Math.PI * i) / order.length);
    });
  }
  for (const n of nodes.filter((n) => n.x == null)) {
    const l = links.find((l) => (l.source === n && l.target.x != null) || (l.target === n && l.source.x != null));
    const near = l ? (l.source === n ? l.target : l.source) : { x: w / 2, y: h / 2 };
    n.x = n.px = near.x + (Math.random() - 0.5) * 80;
    n.y = n.py = near.y + (Math.random() - 0.5) * 80;
    n.fresh = true;
  }
  nodesById = byId;
  return { nodes, links };
}

function render() {
  const lines = edgeLayer.selectAll("line.edge").data(model.links, (d) => d.id);
  lines.exit().remove();
  lines.enter().append("line").attr("class", (d) => "edge " + d.kind).append("title");
  lines.classed("bridged", (d) => !!d.bridged).attr("data-a", (d) => d.a || null).attr("data-b", (d) => d.b || null)
    .attr("data-bridge", (d) => (d.hub && d.hub[0] === "data-bridge" ? d.hub[1] : null))
    .attr("data-switch", (d) => (d.hub && d.hub[0] === "data-switch" ? d.hub[1] : null))
    .select("title").text((d) => (d.a ? `${d.kind}: ${d.a} ↔ ${d.b}` : `${d.source.label} is in ${d.target.label}`));

  const labels = labelLayer.selectAll("g.elabel").data(model.links.filter((l) => l.la || l.lb), (d) => d.id);
  labels.exit().remove();
  const newLabels = labels.enter().append("g").attr("class", "elabel");
  newLabels.append("text").attr("class", "la").attr("dy", "0.35em");
  newLabels.append("text").attr("class", "lb").attr("dy", "0.35em");
  labels.each(function (d) {
    const self = d.source === d.target; // a veth with both ends in one namespace: one label at the stub's end
    d3.select(this).select(".la").text(self ? `${d.la} ↔ ${d.lb}` : d.la);
    d3.select(this).select(".lb").text(self ? "" : d.lb);
  });

  const nodes = nodeLayer.selectAll("g.node").data(model.nodes, (d) => d.id);
  nodes.exit().remove();
  const added = nodes.enter().append("g").attr("class", (d) => "node " + d.kind).call(drag).on("click", (d) => {
    if (d3.event.defaultPrevented) return; // the end of a drag, not a click
    if (d.kind === "ns") showDetails(d.key);
  });
  // The name inside the shape: a pill for a namespace, a box for a bridge, a rounded box for a switch.
  added.append("rect").attr("class", "shape").attr("rx", (d) => ({ ns: 13, bridge: 0, switch: 6 })[d.kind]);
  added.append("text").attr("dy", "0.35em");
  added.append("title");
  nodes.classed("isolated", (d) => !!d.isolated).attr("data-ns", (d) => (d.kind === "ns" ? d.key : null))
    .attr("data-bridge", (d) => (d.kind === "bridge" ? d.key : null))
    .attr("data-switch", (d) => (d.kind === "switch" ? d.key : null));
  nodes.select("text").text((d) => d.label).each(function (d) {
    d.hw = this.getComputedTextLength() / 2 + 11; // half sizes, also where edge labels start
    d.hh = 13;
  });
  nodes.select("rect").attr({ x: (d) => -d.hw, y: (d) => -d.hh, width: (d) => 2 * d.hw, height: (d) => 2 * d.hh });
  nodes.select("title").text((d) => (d.kind === "ns" ? `namespace ${d.key}\ninterfaces: ${(d.interfaces || []).join(", ")}` : d.label));
  applyClasses();
}

// Classes that change without a reload: selection and the shown trace.
function applyClasses() {
  const linkOnPath = (l) => !!onPath && !!l.a && onPath.ends.has(l.a) && onPath.ends.has(l.b);
  edgeLayer.selectAll("line.edge").classed("onpath", linkOnPath);
  const hubsOnPath = new Set(model.links.filter(linkOnPath).map((l) => l.source.id));
  nodeLayer.selectAll("g.node")
    .classed("onpath", (d) => !!onPath && (d.kind === "ns" ? onPath.ns.has(d.key) : hubsOnPath.has(d.id)))
    .classed("drop", (d) => !!onPath && d.kind === "ns" && onPath.drops.has(d.key))
    .classed("selected", (d) => d.kind === "ns" && d.key === selected);
}

// Where an edge is drawn: offset sideways for parallel edges; a short stub when both ends are one node.
function edgeEnds(d) {
  const s = d.source, t = d.target;
  if (s === t) {
    const angle = -Math.PI / 2 + d.index * 0.7;
    return [s.x, s.y, s.x + 60 * Math.cos(angle), s.y + 60 * Math.sin(angle)];
  }
  const flip = s.id < t.id ? 1 : -1; // same side whichever way round the pair is stored
  const dx = t.x - s.x, dy = t.y - s.y, len = Math.hypot(dx, dy) || 1;
  const ox = (-dy / len) * d.offset * flip, oy = (dx / len) * d.offset * flip;
  return [s.x + ox, s.y + oy, t.x + ox, t.y + oy];
}

// Attributes for an interface name on the edge (x1,y1)→(x2,y2) next to node n: written along the
// edge from just outside n's box outwards (readable left to right), so names of edges that leave a
// node at different angles fan out instead of piling up.
function besideNode(n, x1, y1, x2, y2) {
  const len = Math.hypot(x2 - x1, y2 - y1) || 1, ux = (x2 - x1) / len, uy = (y2 - y1) / len;
  const t = Math.min(n.hw / (Math.abs(ux) || 1e-6), n.hh / (Math.abs(uy) || 1e-6)) + 5;
  const x = x1 + ux * t, y = y1 + uy * t, angle = (Math.atan2(uy, ux) * 180) / Math.PI;
  return ux >= 0 ? { x, y, "text-anchor": "start", transform: `rotate(${angle} ${x} ${y})` }
    : { x, y, "text-anchor": "end", transform: `rotate(${angle + 180} ${x} ${y})` };
}

function draw() {
  edgeLayer.selectAll("line.edge").each(function (d) {
    const [x1, y1, x2, y2] = edgeEnds(d);
    d3.select(this).attr({ x1, y1, x2, y2 });
  });
  labelLayer.selectAll("g.elabel").each(function (d) {
    const [x1, y1, x2, y2] = edgeEnds(d);
    const g = d3.select(this);
    if (d.source === d.target) { g.select(".la").attr({ x: x2 + 4, y: y2, "text-anchor": "start", transform: null }); return; }
    // Each interface name sits on the edge just outside the node that holds it.
    g.select(".la").attr(besideNode(d.source, x1, y1, x2, y2));
    g.select(".lb").attr(besideNode(d.target, x2, y2, x1, y1));
  });
  nodeLayer.selectAll("g.node").attr("transform", (d) => `translate(${d.x},${d.y})`);
}

// Zooms so every node is in view (first load only: later the user's view is theirs).
function fitView() {
  if (!model.nodes.length) return;
  const [w, h] = force.size(), pad = 90;
  const xs = model.nodes.map((n) => n.x), ys = model.nodes.map((n) => n.y);
  const x0 = Math.min(...xs) - pad, x1 = Math.max(...xs) + pad, y0 = Math.min(...ys) - pad, y1 = Math.max(...ys) + pad;
  const k = Math.min(1.2, w / (x1 - x0), h / (y1 - y0));
  zoom.scale(k).translate([w / 2 - (k * (x0 + x1)) / 2, h / 2 - (k * (y0 + y1)) / 2]);
  zoomLayer.attr("transform", `translate(${zoom.translate()})scale(${k})`);
}

function setStatus(text, error) {
  $("#status").textContent = text;
  $("#status").classList.toggle("error", !!error);
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : /(s|ch)$/.test(word) ? "es" : "s"}`;

let firstLoad = true, loading = null, again = false;

async function loadGraph() {
  // One fetch at a time; a request during one fetches once more afterwards.
  if (loading) { again = true; return loading; }
  loading = (async () => {
    try {
      // The list only adds unwired namespaces: without it the graph is still drawn.
      const [g, list] = await Promise.all([getJSON("/api/graph"), getJSON("/api/list").catch((e) => ({ error: e.message }))]);
      sizeGraph();
      model = buildModel(g, list);
      force.nodes(model.nodes).links(model.links);
      render();
      force.start();
      if (firstLoad) {
        // Settle before showing, so the first picture is not a swarm and nodes stay where clicked.
        // Ticks without drawing (a redraw per tick moved thousands of elements 300 times), and fewer
        // of them for a large host: 1000 namespaces took 10 s to appear otherwise.
        force.on("tick", null);
        const ticks = model.nodes.length > 300 ? 60 : 300;
        for (let i = 0; i < ticks && force.alpha() > 0.01; i++) force.tick();
        force.on("tick", draw);
        fitView();
        firstLoad = false;
      } else {
        // Only new nodes look for their place; the drawn ones stay where the reader knows them.
        const kept = model.nodes.filter((n) => !n.fresh).map((n) => [n, n.fixed]);
        if (kept.length < model.nodes.length) {
          kept.forEach(([n]) => { n.fixed = true; });
          force.on("tick", null);
          for (let i = 0; i < (model.nodes.length > 300 ? 40 : 150); i++) force.tick();
          force.on("tick", draw);
          kept.forEach(([n, fixed]) => { n.fixed = fixed; });
        }
        force.alpha(0.01);
      }
      model.nodes.forEach((n) => { n.fresh = false; });
      draw();
      fillSelects(model.nodes.filter((n) => n.kind === "ns").map((n) => n.key).sort());
      const extra = [[g.bridges, "bridge"], [g.switches, "switch"]].filter(([a]) => a && a.length).map(([a, w]) => plural(a.length, w));
      const all = model.nodes.filter((n) => n.kind === "ns"), apart = all.filter((n) => n.isolated).length;
      setStatus([plural(all.length, "namespace") + (apart ? ` (${apart} not wired)` : ""), plural((g.veths || []).length, "veth"), ...extra]
        .join(", ") + ` (updated ${new Date().toLocaleTimeString()})` + (list.error ? `; list: ${list.error}` : ""), !!list.error);
      $("#notes").replaceChildren(...(g.unresolved || []).map((u) =>
        el("div", {}, `unresolved ${u.kind} ${endKey(u.end)}: ${u.reason}`)));
    } catch (e) {
      setStatus("graph: " + e.message, true);
    } finally {
      loading = null;
      if (again) { again = false; loadGraph(); }
    }
  })();
  return loading;
}

// ---------------------------------------------------------------- live updates

let reloadTimer = null;
function scheduleReload() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => {
    loadGraph();
    if (selected) showDetails(selected, true);
  }, 300); // a namespace coming up sends a burst of events: fetch once for all of them
}

function connectEvents() {
  const live = $("#live");
  const setLive = (on) => { live.textContent = on ? "live" : "disconnected"; live.className = on ? "on" : "off"; };
  const events = new EventSource("/api/events");
  // EventSource reconnects by itself; whatever happened meanwhile is caught up by reloading on open.
  events.onopen = () => { setLive(true); scheduleReload(); };
  events.onerror = () => setLive(false);
  events.onmessage = (m) => {
    let e;
    try { e = JSON.parse(m.data); } catch (_) { return; }
    if (e.event === "ns" || e.event === "resync" || (e.event === "link" && (e.action === "new" || e.action === "del"))) scheduleReload();
  };
}

// ---------------------------------------------------------------- details

function table(cls, headers, rows) {
  return el("table", { class: cls },
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.length ? rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c ?? ""))))
      : el("tr", {}, el("td", { class: "none", colspan: headers.length }, "none"))));
}

async function showDetails(name, refresh) {
  selected = name;
  applyClasses();
  const box = $("#details");
  if (!refresh) box.replaceChildren(el("h2", {}, "Namespace ", el("code", {}, name)), el("p", { class: "muted" }, "loading…"));
  let s;
  try {
    s = await getJSON("/api/show/" + enc(name));
  } catch (e) {
    if (selected === name) box.replaceChildren(el("h2", {}, "Namespace ", el("code", {}, name)), el("p", { class: "error" }, e.message));
    return;
  }
  if (selected !== name) return; // another node was clicked meanwhile
  const ns = s.namespace || {};
  const links = (s.links || []).map((l) => [
    l.ifname, (l.linkinfo && l.linkinfo.info_kind) || l.link_type,
    el("span", { class: "state-" + l.operstate }, l.operstate), l.mtu, l.address, l.master,
    l.peer ? `${l.peer.netns}:${l.peer.ifname}` : l.link || ""]);
  const addrs = [];
  for (const a of s.addrs || []) for (const i of a.addr_info || []) {
    addrs.push([a.ifname, i.family, `${i.local}/${i.prefixlen}`, i.scope, [i.tentative && "tentative", i.dadfailed && "dadfailed"].filter(Boolean).join(" ")]);
  }
  const routes = (s.routes || []).map((r) => [
    (r.type && r.type !== "unicast" ? r.type + " " : "") + r.dst, r.gateway, r.dev, r.table || "main",
    [r.protocol, r.scope].filter(Boolean).join(" "), r.prefsrc, r.metric]);
  const neigh = (s.neigh || []).map((n) => [n.dst, n.dev, n.lladdr, (n.state || []).join(" ")]);
  box.replaceChildren(
    el("h2", {}, "Namespace ", el("code", {}, name)),
    el("div", { class: "muted" }, `net:[${ns.ns}]`, (ns.names || []).length ? ` names: ${ns.names.join(", ")}` : "",
      ` · ${plural((ns.pids || []).length, "process")}`),
    el("h3", {}, "Links"), table("links", ["name", "kind", "state", "mtu", "mac", "master", "peer"], links),
    el("h3", {}, "Addresses"), table("addrs", ["dev", "family", "address", "scope", ""], addrs),
    el("h3", {}, "Routes"), table("routes", ["dst", "via", "dev", "table", "proto/scope", "src", "metric"], routes),
    el("h3", {}, "Neighbours"), table("neigh", ["address", "dev", "lladdr", "state"], neigh));
}

// ---------------------------------------------------------------- trace

function fillSelects(names) {
  for (const [id, fallback] of [["#from", 0], ["#to", names.length - 1]]) {
    const sel = $(id), keep = sel.value;
    sel.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    sel.value = names.includes(keep) ? keep : names[fallback] || "";
  }
}

const ttlText = (h) => (h.ttl_in != null && h.ttl_out != null ? `ttl ${h.ttl_in} → ${h.ttl_out}`
  : h.ttl_in != null ? `ttl ${h.ttl_in}` : h.ttl_out != null ? `ttl ${h.ttl_out}` : "");

function hopRow(h) {
  const r = h.route;
  const notes = [
    r && (r.error ? el("span", { class: "drop" }, `route: ${r.error}`) : `route ${r.table}: → ${r.out}${r.via ? " via " + r.via : ""}`),
    h.layer2 && `${h.layer2.name || "unnamed"} (${h.layer2.kind}): ${h.layer2.in} → ${h.layer2.out}`,
    ...(h.rewrites || []).map((w) => el("span", { class: "rewrite" }, w)),
    h.drop && el("span", { class: "drop" }, `DROPPED: ${h.drop}${h.drop_place ? " at " + h.drop_place : ""}`),
    h.icmp_sent && el("span", { class: "drop" }, `sent ${h.icmp_sent}`)].filter(Boolean);
  return el("tr", { class: "hop" + (h.routed ? " routed" : "") + (h.drop ? " dropped" : ""), title: h.routed ? "routed here (ttl decremented)" : null },
    el("td", {}, h.netns), el("td", {}, `${h.in || "·"} → ${h.out || "·"}`), el("td", {}, ttlText(h)),
    el("td", {}, notes.flatMap((n, i) => (i ? [el("br"), n] : [n]))));
}

function showTrace(summary, from, to) {
  const path = summary.path || {}, probes = summary.probes || [];
  const agree = probes.filter((p) => p.agrees).length;
  onPath = { ns: new Set(), ends: new Set(), drops: new Set() };
  for (const h of path.hops || []) onPath.ns.add(h.netns);
  for (const p of probes) for (const h of [...(p.there || []), ...(p.back || [])]) {
    onPath.ns.add(h.netns);
    for (const i of [h.in, h.out, h.layer2 && h.layer2.in, h.layer2 && h.layer2.out]) if (i) onPath.ends.add(`${h.netns}:${i}`);
    if (h.drop) onPath.drops.add(h.netns);
  }
  applyClasses();

  const timeline = el("div", { id: "timeline" }, probes.map((p) => el("section", { class: "probe" },
    el("div", {}, el("b", {}, `probe ${p.seq}`), " ", p.outcome,
      p.reply_ttl != null && el("span", { class: "reply-ttl" }, `reply ttl ${p.reply_ttl}`)),
    el("div", { class: "verdict " + (p.agrees ? "agree" : "disagree"), "data-kind": p.verdict_kind }, p.verdict),
    el("table", { class: "hops" },
      [["there", p.there], ["back", p.back]].filter(([, hops]) => hops && hops.length).map(([dir, hops]) => [
        el("tr", { class: "dir" }, el("th", { colspan: 4 }, dir === "there" ? `there: ${from} → ${to}` : `back: ${to} → ${from}`)),
        ...hops.map(hopRow)])),
    (p.discarded_copies || []).map((c) => el("div", { class: "drop" },
      `discarded copy (${c.direction}, ${c.kind}) in ${c.netns}: ${c.drop}${c.drop_place ? " at " + c.drop_place : ""}`)))));
  const clear = el("button", { type: "button" }, "clear");
  clear.onclick = () => { onPath = null; applyClasses(); $("#trace-result").replaceChildren(); };
  $("#trace-result").replaceChildren(
    el("div", { class: "trace-head" },
      el("b", {}, `${from} → ${to}`), path.source ? ` (${path.source} → ${path.destination}) ` : " ", clear,
      el("div", { class: "path-end " + (path.delivered ? "ok" : "bad") }, `predicted path: ${path.end || "?"}`),
      (path.notes || []).map((n) => el("div", { class: "muted" }, n)),
      el("div", {}, `${agree} of ${plural(probes.length, "probe")} as predicted · ${plural(summary.events || 0, "event")}, `,
        summary.lost ? el("span", { class: "lost" }, `${summary.lost} lost`) : "none lost")),
    timeline);
}

async function runTrace(event) {
  event.preventDefault();
  const from = $("#from").value, to = $("#to").value;
  const count = Math.max(1, parseInt($("#count").value, 10) || 1);
  const button = $("#trace"), pcap = $("#pcap");
  button.disabled = true;
  onPath = null; // the last trace's highlight goes with its result
  applyClasses();
  pcap.hidden = true;
  pcap.removeAttribute("href");
  $("#trace-error").textContent = "";
  $("#trace-result").replaceChildren(el("p", { class: "muted" }, `tracing ${from} → ${to} (${plural(count, "probe")})…`));
  try {
    const res = await fetch(`/api/trace?from=${enc(from)}&to=${enc(to)}&count=${count}`, { method: "POST" });
    const text = await res.text();
    if (!res.ok) throw new Error(errorText(res, text));
    // NDJSON: events, then the summary line the page shows.
    const summary = text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l)).find((o) => o.summary);
    if (!summary) throw new Error("the trace's output has no summary line");
    const pcapURL = res.headers.get("X-Pcapng");
    if (pcapURL) { pcap.href = pcapURL; pcap.download = `nsinspect-${from}-${to}.pcapng`; pcap.hidden = false; }
    showTrace(summary, from, to);
  } catch (e) {
    $("#trace-error").textContent = "trace failed: " + e.message;
    $("#trace-result").replaceChildren();
  } finally {
    button.disabled = false;
  }
}

$("#trace-form").addEventListener("submit", runTrace);
sizeGraph();
loadGraph();
connectEvents();
