// modelgit graph page: zoom and pan, the search filter, collapsing subtrees, and
// picking two nodes to compare. The layout is computed in Python; this script only
// changes the viewBox, classes and text. It reads window.MODELGIT_GRAPH (the page's data
// file) and the data-* attributes of the SVG, and never turns text into markup. Every
// table keyed by a model name is an object without a prototype (dict()), read through
// has(): a model may be named "__proto__", "constructor" or "toString".
(function () {
  "use strict";
  var svg = document.getElementById("graph");
  if (!svg) { return; }
  var data = window.MODELGIT_GRAPH || { nodes: {}, diffs: [] };
  var nodes = data.nodes || {};
  var mode = document.body.getAttribute("data-mode") || "static";
  var full = { w: Number(svg.getAttribute("data-width")) || 300,
               h: Number(svg.getAttribute("data-height")) || 120 };
  var view = { x: 0, y: 0, w: full.w, h: full.h };
  var MIN_SCALE = 0.03, MAX_SCALE = 4;
  function dict() { return Object.create(null); }
  var groups = dict();  // name -> <g class="node">
  Array.prototype.forEach.call(svg.querySelectorAll("g.node"), function (g) {
    groups[g.getAttribute("data-name")] = g;
  });
  var edges = Array.prototype.slice.call(svg.querySelectorAll("path.edge"));
  function has(obj, key) { return Object.prototype.hasOwnProperty.call(obj, key); }
  function byId(id) { return document.getElementById(id); }

  // -- zoom and pan: the viewBox keeps the element's aspect ratio -------------------------
  function box() {
    var r = svg.getBoundingClientRect();
    return { w: Math.max(r.width, 1), h: Math.max(r.height, 1) };
  }
  function scale() { return box().w / view.w; }
  function apply() {
    svg.setAttribute("viewBox", [view.x, view.y, view.w, view.h].map(function (v) {
      return v.toFixed(1);
    }).join(" "));
  }
  function setScale(s, cx, cy) {  // keep the point (cx, cy) of the graph where it is
    var b = box();
    s = Math.min(MAX_SCALE, Math.max(MIN_SCALE, s));
    var fx = (cx - view.x) / view.w, fy = (cy - view.y) / view.h;
    view.w = b.w / s; view.h = b.h / s;
    view.x = cx - fx * view.w; view.y = cy - fy * view.h;
    apply();
  }
  function fit() {
    var b = box(), s = Math.min(b.w / full.w, b.h / full.h, 1.5);
    view.w = b.w / s; view.h = b.h / s;
    view.x = (full.w - view.w) / 2; view.y = (full.h - view.h) / 2;
    apply();
  }
  function start() {  // fit when that stays readable; else readable, from the top left
    var b = box(), fits = Math.min(b.w / full.w, b.h / full.h);
    if (fits >= 0.6) { fit(); return; }
    var s = Math.max(Math.min(b.w / full.w, 1), 0.6);
    view.w = b.w / s; view.h = b.h / s;
    view.x = full.w <= view.w ? (full.w - view.w) / 2 : 0; view.y = 0;
    apply();
  }
  function toGraph(clientX, clientY) {
    var r = svg.getBoundingClientRect();
    return { x: view.x + (clientX - r.left) / r.width * view.w,
             y: view.y + (clientY - r.top) / r.height * view.h };
  }
  function centreOn(name) {
    var g = groups[name];
    if (!g) { return; }
    var bb = g.getBBox(), m = g.transform.baseVal.consolidate();
    var x = (m ? m.matrix.e : 0) + bb.x + bb.width / 2, y = (m ? m.matrix.f : 0) + bb.y + bb.height / 2;
    var s = Math.max(scale(), 0.8), b = box();
    view.w = b.w / s; view.h = b.h / s; view.x = x - view.w / 2; view.y = y - view.h / 2;
    apply();
  }
  svg.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    if (ev.ctrlKey || ev.metaKey) {
      var p = toGraph(ev.clientX, ev.clientY);
      setScale(scale() * Math.exp(-ev.deltaY * 0.002), p.x, p.y);
    } else {
      var s = scale();
      view.x += ev.deltaX / s; view.y += ev.deltaY / s;
      apply();
    }
  }, { passive: false });
  var drag = null;
  svg.addEventListener("pointerdown", function (ev) {
    if (ev.button !== 0 || ev.target.closest("a, .pick, .collapse")) { return; }
    drag = { x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y, s: scale(), id: ev.pointerId };
    svg.setPointerCapture(ev.pointerId);
    svg.classList.add("dragging");
  });
  svg.addEventListener("pointermove", function (ev) {
    if (!drag || ev.pointerId !== drag.id) { return; }
    view.x = drag.vx - (ev.clientX - drag.x) / drag.s;
    view.y = drag.vy - (ev.clientY - drag.y) / drag.s;
    apply();
  });
  function endDrag() { drag = null; svg.classList.remove("dragging"); }
  svg.addEventListener("pointerup", endDrag);
  svg.addEventListener("pointercancel", endDrag);
  function zoomBy(f) { setScale(scale() * f, view.x + view.w / 2, view.y + view.h / 2); }
  byId("zoom-in").addEventListener("click", function () { zoomBy(1.3); });
  byId("zoom-out").addEventListener("click", function () { zoomBy(1 / 1.3); });
  byId("fit").addEventListener("click", fit);
  document.addEventListener("keydown", function (ev) {
    var t = ev.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA")) { return; }
    var step = 60 / scale();
    if (ev.key === "+" || ev.key === "=") { zoomBy(1.3); }
    else if (ev.key === "-") { zoomBy(1 / 1.3); }
    else if (ev.key === "0") { fit(); }
    else if (ev.key === "ArrowLeft") { view.x -= step; apply(); }
    else if (ev.key === "ArrowRight") { view.x += step; apply(); }
    else if (ev.key === "ArrowUp") { view.y -= step; apply(); }
    else if (ev.key === "ArrowDown") { view.y += step; apply(); }
    else { return; }
    ev.preventDefault();
  });
  window.addEventListener("resize", function () {
    var b = box(), s = view.w ? b.w / view.w : 1;
    view.h = b.h / s;
    apply();
  });

  // -- search: matching nodes highlighted, the others dimmed ------------------------------
  var search = byId("search"), count = byId("search-count");
  var matches = [];
  function filter() {
    var q = search.value.trim().toLowerCase();
    matches = [];
    Object.keys(groups).forEach(function (name) {
      var n = has(nodes, name) ? nodes[name] : null;
      var hit = q !== "" && (n ? n.search : name.toLowerCase()).indexOf(q) >= 0;
      if (hit) { matches.push(name); }
      groups[name].classList.toggle("match", hit);
      groups[name].classList.toggle("dim", q !== "" && !hit);
    });
    edges.forEach(function (e) { e.classList.toggle("dim", q !== ""); });
    count.textContent = q === "" ? "" : matches.length + " found";
  }
  search.addEventListener("input", filter);
  search.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && matches.length) {
      ev.preventDefault();
      var i = (Number(search.getAttribute("data-next")) || 0) % matches.length;
      search.setAttribute("data-next", String(i + 1));
      centreOn(matches[i]);
    }
  });

  // -- collapse: hide what is derived from a node (what no other path reaches) ----------
  var collapsed = dict();
  function kids(name) { return has(nodes, name) ? nodes[name].children || [] : []; }
  function parents(name) { return has(nodes, name) ? nodes[name].parents || [] : []; }
  function descendants(name) {
    var seen = dict(), todo = kids(name).slice(), out = [];
    while (todo.length) {
      var n = todo.pop();
      if (has(seen, n)) { continue; }
      seen[n] = true; out.push(n);
      Array.prototype.push.apply(todo, kids(n));
    }
    return out;
  }
  function refresh() {
    var visible = dict(), todo = Object.keys(groups).filter(function (n) {
      return parents(n).length === 0;
    });
    while (todo.length) {
      var n = todo.pop();
      if (has(visible, n)) { continue; }
      visible[n] = true;
      if (!has(collapsed, n)) { Array.prototype.push.apply(todo, kids(n)); }
    }
    var hidden = dict();
    Object.keys(collapsed).forEach(function (c) {
      descendants(c).forEach(function (d) { if (!has(visible, d)) { hidden[d] = true; } });
    });
    Object.keys(groups).forEach(function (name) {
      var g = groups[name], isCollapsed = has(collapsed, name);
      g.classList.toggle("hidden", has(hidden, name));
      g.classList.toggle("collapsed", isCollapsed);
      var btn = g.querySelector(".collapse text"), badge = g.querySelector(".hidden-count");
      if (btn) { btn.textContent = isCollapsed ? "+" : "\u2212"; }
      if (badge) {
        var n = isCollapsed ? descendants(name).filter(function (d) { return has(hidden, d); }).length : 0;
        badge.textContent = n ? "+" + n : "";
      }
    });
    edges.forEach(function (e) {
      var off = has(hidden, e.getAttribute("data-from")) || has(hidden, e.getAttribute("data-to"));
      e.classList.toggle("hidden", off);
    });
  }
  svg.addEventListener("click", function (ev) {
    var c = ev.target.closest(".collapse");
    if (c) {
      var name = c.getAttribute("data-name");
      if (has(collapsed, name)) { delete collapsed[name]; } else { collapsed[name] = true; }
      refresh();
      return;
    }
    var p = ev.target.closest(".pick");
    if (p) { pick(p.closest("g.node").getAttribute("data-name")); }
  });
  byId("expand-all").addEventListener("click", function () { collapsed = dict(); refresh(); });

  // -- pick two nodes, compare them -------------------------------------------------------
  var picked = [], compare = byId("compare"), note = byId("compare-note");
  function pick(name) {
    var i = picked.indexOf(name);
    if (i >= 0) { picked.splice(i, 1); } else { picked.push(name); }
    while (picked.length > 2) { picked.shift(); }
    Object.keys(groups).forEach(function (n) {
      groups[n].classList.toggle("picked", picked.indexOf(n) >= 0);
    });
    compare.disabled = picked.length !== 2;
    byId("picked").textContent = picked.join(" \u2194 ");
    note.hidden = true;
  }
  function isAncestor(a, b) {  // a is an ancestor of b
    var seen = dict(), todo = parents(b).slice();
    while (todo.length) {
      var n = todo.pop();
      if (n === a) { return true; }
      if (has(seen, n)) { continue; }
      seen[n] = true;
      Array.prototype.push.apply(todo, parents(n));
    }
    return false;
  }
  function modelOf(ref) { return ref.split("@")[0]; }
  function target(a, b) {
    var ra = has(nodes, a) ? nodes[a].ref : a, rb = has(nodes, b) ? nodes[b].ref : b;
    if (mode === "serve") {
      return "diff?a=" + encodeURIComponent(ra) + "&b=" + encodeURIComponent(rb);
    }
    var diffs = data.diffs || [], i, d;
    for (i = 0; i < diffs.length; i++) {
      d = diffs[i];
      if ((d[0] === ra && d[1] === rb) || (d[0] === rb && d[1] === ra)) { return d[2]; }
    }
    if (data.view === "models") {  // a precomputed diff between the two models' versions
      for (i = diffs.length - 1; i >= 0; i--) {
        d = diffs[i];
        if (modelOf(d[0]) === a && modelOf(d[1]) === b) { return d[2]; }
        if (modelOf(d[0]) === b && modelOf(d[1]) === a) { return d[2]; }
      }
    }
    return null;
  }
  compare.addEventListener("click", function () {
    if (picked.length !== 2) { return; }
    var a = picked[0], b = picked[1];
    if (isAncestor(b, a)) { a = picked[1]; b = picked[0]; }
    var href = target(a, b);
    if (href) { window.location.href = href; return; }
    note.textContent = "This static site holds the diffs of each version against the one " +
      "before it and of each model against its parents. To compare " + a + " and " + b +
      ", run `modelgit serve` (any two versions) or `modelgit diff`.";
    note.hidden = false;
  });

  start();
  refresh();
  if (search.value) { filter(); }
}());
