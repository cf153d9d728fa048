// gradviz interactive view: pan/zoom, search, node details, module groups, colouring.
// Reads the graph from the JSON block of each .gradviz element; never writes user text as HTML
// (everything goes through textContent), so names cannot inject markup.
(function () {
  "use strict";
  var SVGNS = "http://www.w3.org/2000/svg";
  var PRECISION = 4;
  var MISSING = "\u2014";
  var RAMP = [[239, 243, 255], [254, 227, 145], [252, 141, 89]];
  var ZERO = "#d9d9d9";
  var BAD = "#ff6b6b";
  var NONE = "#ffffff";

  // -- numbers, as graphviz_grad/render/_format.py writes them ---------------------------------
  function isFloatDtype(dtype) {
    return /float|complex/.test(String(dtype || "float"));
  }

  function stripZeros(text) {
    return text.indexOf(".") < 0 ? text : text.replace(/0+$/, "").replace(/\.$/, "");
  }

  function fmtNumber(x, isFloat) {
    if (typeof x === "string" || typeof x === "boolean") return String(x);
    if (x === null || x === undefined) return MISSING;
    if (!isFloat) return String(x);
    if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
    var exp = Number(x.toExponential(PRECISION - 1).split("e")[1]);
    if (exp < -4 || exp >= PRECISION) {
      var parts = x.toExponential(PRECISION - 1).split("e");
      var e = Number(parts[1]);
      var digits = String(Math.abs(e));
      return stripZeros(parts[0]) + "e" + (e < 0 ? "-" : "+") + (digits.length < 2 ? "0" : "") + digits;
    }
    var fixed = x.toFixed(Math.max(0, PRECISION - 1 - exp));
    var short = stripZeros(fixed);
    if (short.indexOf(".") >= 0) return short;
    if (Number.isInteger(x)) return short + ".0";
    return fixed.indexOf(".") < 0 ? fixed + "." : fixed;
  }

  function fmtData(data, isFloat, maxChars) {
    var out = [];
    var size = 0;
    var stack = [{ items: [data], i: 0, top: true }];
    while (stack.length && size <= maxChars) {
      var frame = stack[stack.length - 1];
      if (frame.i >= frame.items.length) {
        stack.pop();
        if (!frame.top) out.push("]");
        continue;
      }
      var item = frame.items[frame.i];
      if (frame.i > 0) out.push(", ");
      frame.i += 1;
      if (Array.isArray(item)) {
        out.push("[");
        stack.push({ items: item, i: 0, top: false });
      } else {
        var piece = fmtNumber(item, isFloat);
        out.push(piece);
        size += piece.length;
      }
    }
    var text = out.join("");
    return text.length > maxChars ? text.slice(0, maxChars - 1) + "\u2026" : text;
  }

  function shortType(shape, dtype) {
    if (!shape && !dtype) return "";
    var names = { float64: "f64", float32: "f32", float16: "f16", bfloat16: "bf16", int64: "i64",
      int32: "i32", int16: "i16", int8: "i8", uint8: "u8", bool: "bool", complex64: "c64",
      complex128: "c128" };
    var d = dtype ? (names[dtype] || dtype) : "?";
    return d + (shape ? "[" + shape.join(", ") + "]" : "?");
  }

  function numel(s) {
    return s.shape.reduce(function (a, b) { return a * b; }, 1);
  }

  function single(data) {
    while (Array.isArray(data) && data.length === 1) data = data[0];
    return data;
  }

  function summaryLine(s) {
    if (!s) return MISSING;
    var f = isFloatDtype(s.dtype);
    if (s.data !== undefined) return fmtData(numel(s) === 1 ? single(s.data) : s.data, f, 60);
    return [shortType(s.shape, s.dtype)].concat(stats(s)).join(" ");
  }

  function stats(s) {
    var f = isFloatDtype(s.dtype);
    var parts = [];
    if (s.mean !== null) parts.push("\u03bc=" + fmtNumber(s.mean, true));
    if (s.min !== null) parts.push("min=" + fmtNumber(s.min, f));
    if (s.max !== null) parts.push("max=" + fmtNumber(s.max, f));
    if (s.norm !== null) parts.push("norm=" + fmtNumber(s.norm, true));
    return parts;
  }

  // -- magnitudes and colours ---------------------------------------------------------------
  function magnitude(s) {
    // log10 of the RMS of the finite elements: size-independent, comparable across nodes.
    if (!s || s.nan > 0 || s.inf > 0) return null;
    if (typeof s.norm !== "number") return null;
    var count = numel(s);
    if (count === 0 || s.norm === 0) return null;
    return Math.log10(s.norm / Math.sqrt(count));
  }

  function category(s) {
    if (!s) return "none";
    if (s.nan > 0 || s.inf > 0) return "bad";
    if (s.norm === 0 || (s.min === 0 && s.max === 0)) return "zero";
    return magnitude(s) === null ? "none" : "scale";
  }

  function ramp(t) {
    var x = Math.min(1, Math.max(0, t)) * (RAMP.length - 1);
    var i = Math.min(RAMP.length - 2, Math.floor(x));
    var u = x - i;
    var c = RAMP[i].map(function (a, k) { return Math.round(a + (RAMP[i + 1][k] - a) * u); });
    return "rgb(" + c.join(",") + ")";
  }

  // -- small DOM helpers (text only, never innerHTML) -----------------------------------------
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function svgEl(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    return e;
  }

  function row(table, key, value) {
    var tr = el("tr");
    tr.appendChild(el("td", "", key));
    var td = el("td", "gv-text");
    if (value instanceof Node) td.appendChild(value); else td.textContent = String(value);
    tr.appendChild(td);
    table.appendChild(tr);
  }

  function parseHash(hash) {
    var out = {};
    String(hash || "").replace(/^#/, "").split("&").forEach(function (part) {
      var i = part.indexOf("=");
      if (i <= 0) return;
      try {
        out[decodeURIComponent(part.slice(0, i))] = decodeURIComponent(part.slice(i + 1).replace(/\+/g, " "));
      } catch (err) { /* a malformed fragment is ignored */ }
    });
    return out;
  }

  // -- the view ------------------------------------------------------------------------------
  function View(root, graph) {
    this.root = root;
    this.graph = graph;
    this.nodes = graph.nodes;
    this.canvas = root.querySelector(".gv-canvas");
    this.svg = this.canvas ? this.canvas.querySelector("svg") : null;
    this.details = root.querySelector(".gv-details");
    this.search = root.querySelector(".gv-search");
    this.count = root.querySelector(".gv-count");
    this.colour = root.querySelector(".gv-colour");
    this.legend = root.querySelector(".gv-legend");
    this.modulesBox = root.querySelector(".gv-modules");
    this.nodeEls = {};
    this.edgeEls = [];
    this.selected = null;
    this.matches = [];
    this.matchAt = -1;
    this.collapsed = {};
    this.findingsOf = {};
    this.moduleOf = {};
    this.inputs = {};
    this.consumers = {};
  }

  View.prototype.start = function () {
    this.indexGraph();
    if (this.svg) {
      this.indexSvg();
      this.setupViewBox();
      this.bindPanZoom();
    }
    this.bindControls();
    this.buildModules();
    this.applyColour();
    this.showDefault();
    if (this.root.classList.contains("gv-page")) this.applyHash(parseHash(window.location.hash));
    this.root.setAttribute("data-gv-ready", "1");
  };

  View.prototype.indexGraph = function () {
    var self = this;
    this.nodes.forEach(function (n) { self.inputs[n.id] = []; self.consumers[n.id] = []; });
    this.graph.edges.forEach(function (e) {
      if (self.inputs[e.dst]) self.inputs[e.dst].push(e);
      if (self.consumers[e.src]) self.consumers[e.src].push(e);
    });
    var known = {};
    this.nodes.forEach(function (n) { if (n.module) known[n.module] = true; });
    this.nodes.forEach(function (n) { self.moduleOf[n.id] = n.module || ownerOf(n, known); });
    this.graph.findings.forEach(function (f) {
      f.nodes.forEach(function (id) { (self.findingsOf[id] = self.findingsOf[id] || []).push(f); });
    });
  };

  View.prototype.indexSvg = function () {
    var self = this;
    this.layer = this.svg.querySelector("g.graph") || this.svg;
    this.svg.querySelectorAll("g.node").forEach(function (g) {
      var title = g.querySelector("title");
      var m = /^n(\d+)$/.exec(title ? title.textContent.trim() : "");
      if (!m) return;
      var id = Number(m[1]);
      g.classList.add("gv-node");
      g.setAttribute("data-node", String(id));
      var fill = g.querySelector("polygon:not([fill='none']), path:not([fill='none'])");
      if (fill) g.setAttribute("data-fill", fill.getAttribute("fill") || "");
      self.nodeEls[id] = g;
      g.addEventListener("mouseenter", function () { self.preview(id); });
      g.addEventListener("mouseleave", function () { self.preview(null); });
      g.addEventListener("click", function (ev) { ev.stopPropagation(); self.select(id, false); });
    });
    this.svg.querySelectorAll("g.edge").forEach(function (g) {
      var title = g.querySelector("title");
      var m = /^n(\d+)(?::\S*)?->n(\d+)/.exec(title ? title.textContent.trim() : "");
      if (!m) return;
      g.classList.add("gv-edge");
      g.setAttribute("data-src", m[1]);
      g.setAttribute("data-dst", m[2]);
      self.edgeEls.push(g);
    });
    this.overlay = svgEl("g", { "class": "gv-overlay" });
    this.layer.appendChild(this.overlay);
  };

  // -- pan and zoom through the viewBox -------------------------------------------------------
  View.prototype.setupViewBox = function () {
    var vb = (this.svg.getAttribute("viewBox") || "0 0 100 100").trim().split(/[\s,]+/).map(Number);
    this.base = { x: vb[0], y: vb[1], w: vb[2], h: vb[3] };
    this.svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
    this.fit();
  };

  View.prototype.setBox = function (b) {
    this.box = b;
    this.svg.setAttribute("viewBox", [b.x, b.y, b.w, b.h].map(function (v) { return +v.toFixed(3); }).join(" "));
  };

  View.prototype.fit = function () {
    var pad = 0.02 * Math.max(this.base.w, this.base.h);
    this.setBox({ x: this.base.x - pad, y: this.base.y - pad, w: this.base.w + 2 * pad, h: this.base.h + 2 * pad });
  };

  View.prototype.toSvg = function (clientX, clientY) {
    var ctm = this.svg.getScreenCTM();
    if (!ctm) return { x: this.box.x + this.box.w / 2, y: this.box.y + this.box.h / 2 };
    var p = this.svg.createSVGPoint();
    p.x = clientX;
    p.y = clientY;
    var q = p.matrixTransform(ctm.inverse());
    return { x: q.x, y: q.y };
  };

  View.prototype.zoom = function (factor, clientX, clientY) {
    var b = this.box;
    var rect = this.svg.getBoundingClientRect();
    var p = clientX === undefined ? { x: b.x + b.w / 2, y: b.y + b.h / 2 } : this.toSvg(clientX, clientY);
    var w = Math.min(Math.max(b.w * factor, this.base.w / 200), this.base.w * 20 + rect.width);
    var k = w / b.w;
    this.setBox({ x: p.x - (p.x - b.x) * k, y: p.y - (p.y - b.y) * k, w: b.w * k, h: b.h * k });
  };

  View.prototype.bindPanZoom = function () {
    var self = this;
    var drag = null;
    this.canvas.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      self.zoom(Math.exp(ev.deltaY * (ev.deltaMode ? 0.05 : 0.0015)), ev.clientX, ev.clientY);
    }, { passive: false });
    this.canvas.addEventListener("pointerdown", function (ev) {
      if (ev.button !== 0) return;
      drag = { x: ev.clientX, y: ev.clientY, box: self.box, moved: false, id: ev.pointerId };
    });
    this.canvas.addEventListener("pointermove", function (ev) {
      if (!drag) return;
      var ctm = self.svg.getScreenCTM();
      var scale = ctm ? ctm.a : 1;
      var dx = (ev.clientX - drag.x) / scale;
      var dy = (ev.clientY - drag.y) / scale;
      if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 3 / scale) return;
      if (!drag.moved) {
        drag.moved = true;
        self.canvas.classList.add("gv-dragging");
        self.canvas.setPointerCapture(drag.id);
      }
      self.setBox({ x: drag.box.x - dx, y: drag.box.y - dy, w: drag.box.w, h: drag.box.h });
    });
    var end = function () {
      if (drag && drag.moved) {
        self.canvas.classList.remove("gv-dragging");
        var swallow = function (ev) { ev.stopPropagation(); };
        self.canvas.addEventListener("click", swallow, { capture: true, once: true });
        setTimeout(function () { self.canvas.removeEventListener("click", swallow, { capture: true }); }, 0);
      }
      drag = null;
    };
    this.canvas.addEventListener("pointerup", end);
    this.canvas.addEventListener("pointercancel", end);
    this.canvas.addEventListener("click", function () { self.select(null, false); });
  };

  View.prototype.boxOf = function (g) {
    // The node's box in the coordinates of the graph layer (graphviz gives nodes no transform).
    var b = g.getBBox();
    return { x: b.x, y: b.y, w: b.width, h: b.height };
  };

  View.prototype.layerToSvg = function (x, y) {
    var m = this.layer.transform && this.layer.transform.baseVal.consolidate();
    if (!m) return { x: x, y: y };
    var p = this.svg.createSVGPoint();
    p.x = x;
    p.y = y;
    var q = p.matrixTransform(m.matrix);
    return { x: q.x, y: q.y };
  };

  View.prototype.focus = function (id) {
    var g = this.nodeEls[id];
    if (!g || !this.box) return;
    var b = this.boxOf(g);
    var c = this.layerToSvg(b.x + b.w / 2, b.y + b.h / 2);
    // Zoom in only as far as needed to make the node readable (about 160 px wide).
    var ctm = this.svg.getScreenCTM();
    var px = ctm ? b.w * ctm.a : 160;
    var k = px > 0 && px < 100 ? px / 160 : 1;
    var w = this.box.w * k;
    var h = this.box.h * k;
    this.setBox({ x: c.x - w / 2, y: c.y - h / 2, w: w, h: h });
  };

  // -- search -------------------------------------------------------------------------------
  View.prototype.rank = function (n, q) {
    var words = [].concat(n.names, [n.op, n.aten, n.module, n.module_type, n.kind]).filter(Boolean)
      .map(function (s) { return String(s).toLowerCase(); });
    if (q === "#" + n.id) return 0;
    if (words.indexOf(q) >= 0) return 1;
    if (words.some(function (w) { return w.indexOf(q) === 0; })) return 2;
    if (words.some(function (w) { return w.indexOf(q) >= 0; })) return 3;
    var where = (n.file || "") + ":" + (n.line || "");
    return where.toLowerCase().indexOf(q) >= 0 ? 4 : -1;
  };

  View.prototype.runSearch = function (text, jump) {
    var self = this;
    var q = String(text || "").trim().toLowerCase();
    Object.keys(this.nodeEls).forEach(function (id) { self.nodeEls[id].classList.remove("gv-match"); });
    this.matches = [];
    this.matchAt = -1;
    if (!q) {
      this.root.classList.remove("gv-searching");
      this.count.textContent = "";
      return;
    }
    var ranked = [];
    this.nodes.forEach(function (n) {
      var r = self.rank(n, q);
      if (r >= 0) ranked.push([r, n.id]);
    });
    ranked.sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; });
    this.matches = ranked.map(function (p) { return p[1]; });
    this.matches.forEach(function (id) { if (self.nodeEls[id]) self.nodeEls[id].classList.add("gv-match"); });
    this.root.classList.add("gv-searching");
    var n = this.matches.length;
    this.count.textContent = n === 1 ? "1 match" : n + " matches";
    if (jump && n) this.nextMatch();
  };

  View.prototype.nextMatch = function () {
    if (!this.matches.length) return;
    this.matchAt = (this.matchAt + 1) % this.matches.length;
    var id = this.matches[this.matchAt];
    this.count.textContent = (this.matchAt + 1) + " of " + this.matches.length;
    this.select(id, true);
  };

  // -- details ------------------------------------------------------------------------------
  View.prototype.label = function (n) {
    return n.names.length ? n.names[0] : (n.op || "leaf");
  };

  View.prototype.nodeLink = function (id, suffix) {
    var self = this;
    var n = this.nodes[id];
    var b = el("button", "gv-link", "#" + id + " " + (n ? this.label(n) : "?") + (suffix || ""));
    b.type = "button";
    b.addEventListener("click", function () { self.select(id, true); });
    return b;
  };

  View.prototype.summaryBlock = function (title, s) {
    var box = el("div");
    box.appendChild(el("h3", "", title));
    if (!s) {
      box.appendChild(el("div", "gv-hint", MISSING + " (not recorded)"));
      return box;
    }
    var t = el("table");
    var count = numel(s);
    row(t, "type", shortType(s.shape, s.dtype) + " (" + count + (count === 1 ? " element)" : " elements)"));
    if (s.data !== undefined) {
      var pre = el("pre", "gv-data-text", fmtData(s.data, isFloatDtype(s.dtype), 4000));
      row(t, "data", pre);
    }
    var st = stats(s);
    if (st.length) row(t, "stats", st.join("  "));
    if (s.nan || s.inf) row(t, "non-finite", "nan=" + s.nan + " inf=" + s.inf);
    if (s.note) row(t, "note", s.note);
    box.appendChild(t);
    return box;
  };

  View.prototype.render = function (id) {
    var n = this.nodes[id];
    var d = this.details;
    d.textContent = "";
    d.setAttribute("data-node", String(id));
    d.appendChild(el("h2", "gv-node-title", "#" + n.id + " " + (n.kind === "leaf" ? "leaf" : n.op || "?")));
    var t = el("table", "gv-facts");
    if (n.names.length) row(t, "names", n.names.join(", "));
    row(t, "shape", n.shape ? "[" + n.shape.join(", ") + "]" : "?");
    row(t, "dtype", n.dtype || "?");
    row(t, "value", summaryLine(n.value));
    row(t, "grad", summaryLine(n.grad));
    if (n.module) row(t, "module", n.module + (n.module_type ? " (" + n.module_type + ")" : ""));
    if (n.file) row(t, "where", n.file + (n.line ? ":" + n.line : ""));
    if (n.aten) row(t, "aten op", n.aten);
    if (n.order !== null && n.order !== undefined) row(t, "backward order", n.order);
    d.appendChild(t);
    this.renderFindings(d, this.findingsOf[id] || []);
    if (n.outputs && n.outputs.length > 1) {
      var self = this;
      n.outputs.forEach(function (o, i) {
        d.appendChild(self.summaryBlock("output " + i + " value", o.value));
        d.appendChild(self.summaryBlock("output " + i + " gradient", o.grad));
      });
    } else {
      d.appendChild(this.summaryBlock("value", n.value));
      d.appendChild(this.summaryBlock("gradient (dLoss/dOutput)", n.grad));
    }
    this.renderSaved(d, n);
    this.renderConstants(d, n);
    this.renderEdges(d, "inputs", this.inputs[id], "src");
    this.renderEdges(d, "used by", this.consumers[id], "dst");
  };

  View.prototype.renderFindings = function (d, findings) {
    if (!findings.length) return;
    d.appendChild(el("h3", "", "findings"));
    findings.forEach(function (f) {
      var p = el("div", "gv-finding");
      p.appendChild(el("span", "gv-sev-" + f.severity, f.severity + " " + f.code));
      p.appendChild(el("span", "gv-text", " " + f.message));
      if (f.file) p.appendChild(el("div", "gv-hint gv-text", f.file + (f.line ? ":" + f.line : "")));
      if (f.hint) p.appendChild(el("div", "gv-hint gv-text", "hint: " + f.hint));
      d.appendChild(p);
    });
  };

  View.prototype.renderSaved = function (d, n) {
    if (!n.saved.length) return;
    var self = this;
    d.appendChild(el("h3", "", "saved for backward"));
    var t = el("table");
    n.saved.forEach(function (s) {
      var cell = el("span");
      var text = s.state === "freed" ? "(freed)" : s.summary ? summaryLine(s.summary) : (s.text === null ? MISSING : s.text);
      cell.appendChild(el("span", "gv-text", text + (s.state === "stale" ? " (modified in place: stale)" : "")));
      if (s.node !== null && s.node !== undefined) {
        cell.appendChild(document.createTextNode(" = "));
        cell.appendChild(self.nodeLink(s.node));
      }
      row(t, s.name, cell);
    });
    d.appendChild(t);
  };

  View.prototype.renderConstants = function (d, n) {
    if (!n.constants || !n.constants.length) return;
    d.appendChild(el("h3", "", "constant inputs"));
    var t = el("table");
    n.constants.forEach(function (c) { row(t, "arg " + c.index, summaryLine(c.value)); });
    d.appendChild(t);
  };

  View.prototype.renderEdges = function (d, title, edges, end) {
    if (!edges || !edges.length) return;
    var self = this;
    d.appendChild(el("h3", "", title));
    var t = el("table");
    edges.forEach(function (e) {
      var cell = el("span");
      cell.appendChild(self.nodeLink(e[end], e.output_nr ? " (out" + e.output_nr + ")" : ""));
      if (e.grad) cell.appendChild(el("span", "gv-hint", "  grad " + summaryLine(e.grad)));
      row(t, end === "src" ? "input " + e.index : "as input " + e.index, cell);
    });
    d.appendChild(t);
  };

  View.prototype.showDefault = function () {
    var d = this.details;
    d.textContent = "";
    d.removeAttribute("data-node");
    d.appendChild(el("div", "gv-hint",
      "Click or hover a node for its details. Drag to pan, wheel to zoom, / to search."));
  };

  View.prototype.ring = function (id) {
    if (this.ringEl) this.ringEl.remove();
    this.ringEl = null;
    var g = this.nodeEls[id];
    if (!g || !this.overlay) return;
    var b = this.boxOf(g);
    this.ringEl = svgEl("rect", { "class": "gv-ring", x: b.x - 4, y: b.y - 4, width: b.w + 8, height: b.h + 8, rx: 4 });
    this.overlay.appendChild(this.ringEl);
  };

  View.prototype.select = function (id, focus) {
    this.selected = id;
    if (id === null || !this.nodes[id]) {
      this.selected = null;
      this.ring(null);
      this.showDefault();
      return;
    }
    this.expandFor(id);
    this.render(id);
    this.ring(id);
    if (focus) this.focus(id);
  };

  View.prototype.preview = function (id) {
    if (id === null) {
      if (this.selected !== null) this.render(this.selected); else this.showDefault();
      return;
    }
    this.render(id);
  };

  // -- module groups ------------------------------------------------------------------------
  View.prototype.modulePaths = function () {
    var counts = {};
    var types = {};
    var self = this;
    this.nodes.forEach(function (n) {
      var m = self.moduleOf[n.id];
      if (!m) return;
      var parts = m.split(".");
      for (var i = 1; i <= parts.length; i++) {
        var p = parts.slice(0, i).join(".");
        counts[p] = (counts[p] || 0) + 1;
      }
      if (n.module) types[n.module] = n.module_type;
    });
    var paths = Object.keys(counts).sort(function (a, b) { return a.localeCompare(b, "en", { numeric: true }); });
    return { paths: paths, counts: counts, types: types };
  };

  View.prototype.buildModules = function () {
    var box = this.modulesBox;
    if (!box) return;
    var self = this;
    var info = this.modulePaths();
    box.textContent = "";
    this.moduleInputs = {};
    info.paths.forEach(function (p) {
      var depth = p.split(".").length - 1;
      var label = el("label");
      var cb = el("input");
      cb.type = "checkbox";
      cb.checked = true;
      cb.setAttribute("data-module", p);
      cb.addEventListener("change", function () { self.setCollapsed(p, !cb.checked); });
      self.moduleInputs[p] = cb;
      label.appendChild(document.createTextNode(new Array(depth + 1).join("  ")));
      label.appendChild(cb);
      var type = info.types[p] ? " (" + info.types[p] + ")" : "";
      label.appendChild(document.createTextNode(" " + p.split(".").pop() + type + " \u00b7 " + info.counts[p]));
      label.title = p;
      box.appendChild(label);
    });
  };

  function ownerOf(n, known) {
    // A parameter leaf named "model.0.weight" belongs to module "model.0" when that module ran.
    if (n.kind !== "leaf") return null;
    for (var i = 0; i < n.names.length; i++) {
      var cut = n.names[i].lastIndexOf(".");
      if (cut > 0 && known[n.names[i].slice(0, cut)]) return n.names[i].slice(0, cut);
    }
    return null;
  }

  function within(m, p) {
    return !!m && (m === p || m.indexOf(p + ".") === 0);
  }

  View.prototype.setCollapsed = function (path, on) {
    if (on) this.collapsed[path] = true; else delete this.collapsed[path];
    if (this.moduleInputs && this.moduleInputs[path]) this.moduleInputs[path].checked = !on;
    this.drawGroups();
  };

  View.prototype.expandFor = function (id) {
    var n = this.nodes[id];
    var self = this;
    var m = this.moduleOf[id];
    Object.keys(this.collapsed).forEach(function (p) { if (within(m, p)) self.setCollapsed(p, false); });
  };

  View.prototype.groupOf = function (n) {
    // The outermost collapsed module holding `n`, or null.
    var best = null;
    var m = this.moduleOf[n.id];
    Object.keys(this.collapsed).forEach(function (p) {
      if (within(m, p) && (best === null || p.length < best.length)) best = p;
    });
    return best;
  };

  View.prototype.drawGroups = function () {
    if (!this.svg) return;
    var self = this;
    var members = {};
    this.nodes.forEach(function (n) {
      var g = self.nodeEls[n.id];
      var p = self.groupOf(n);
      if (g) g.classList.toggle("gv-collapsed", p !== null);
      if (p !== null) (members[p] = members[p] || []).push(n.id);
    });
    this.edgeEls.forEach(function (g) {
      var a = self.groupOf(self.nodes[Number(g.getAttribute("data-src"))]);
      var b = self.groupOf(self.nodes[Number(g.getAttribute("data-dst"))]);
      g.classList.toggle("gv-collapsed", a !== null && a === b);
    });
    var boxes = {};
    Object.keys(members).forEach(function (p) {
      boxes[p] = members[p].filter(function (id) { return self.nodeEls[id]; })
        .map(function (id) { return self.boxOf(self.nodeEls[id]); });
    });
    this.clusterMembers().forEach(function (c) {
      // A Graphviz cluster folds with its module: every node drawn inside it is in one group.
      var first = c.ids.length ? self.groupOf(self.nodes[c.ids[0]]) : null;
      var all = first !== null && c.ids.every(function (id) { return self.groupOf(self.nodes[id]) === first; });
      c.g.classList.toggle("gv-collapsed", all);
      if (all) boxes[first].push(c.box);
    });
    this.overlay.querySelectorAll(".gv-group").forEach(function (g) { g.remove(); });
    Object.keys(members).sort().forEach(function (p) { self.drawGroup(p, members[p].length, boxes[p]); });
  };

  View.prototype.clusterMembers = function () {
    // Per Graphviz cluster, the nodes whose centre lies inside it (measured once, on first use).
    if (this.clusters) return this.clusters;
    var self = this;
    var centres = Object.keys(this.nodeEls).map(function (id) {
      var b = self.boxOf(self.nodeEls[id]);
      return { id: Number(id), x: b.x + b.w / 2, y: b.y + b.h / 2 };
    });
    this.clusters = [];
    this.svg.querySelectorAll("g.cluster").forEach(function (g) {
      var b = self.boxOf(g);
      var ids = centres.filter(function (c) {
        return c.x >= b.x && c.x <= b.x + b.w && c.y >= b.y && c.y <= b.y + b.h;
      }).map(function (c) { return c.id; });
      self.clusters.push({ g: g, box: b, ids: ids });
    });
    return this.clusters;
  };

  View.prototype.drawGroup = function (path, count, boxes) {
    var self = this;
    var x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    boxes.forEach(function (b) {
      x0 = Math.min(x0, b.x); y0 = Math.min(y0, b.y);
      x1 = Math.max(x1, b.x + b.w); y1 = Math.max(y1, b.y + b.h);
    });
    if (!isFinite(x0)) return;
    var g = svgEl("g", { "class": "gv-group", "data-module": path });
    g.appendChild(svgEl("rect", { x: x0 - 6, y: y0 - 6, width: x1 - x0 + 12, height: y1 - y0 + 12, rx: 6 }));
    var text = svgEl("text", { x: x0, y: y0 + 12 });
    text.textContent = "\u25b8 " + path + " (" + count + (count === 1 ? " node)" : " nodes)");
    g.appendChild(text);
    var title = svgEl("title");
    title.textContent = "Click to expand " + path;
    g.appendChild(title);
    g.addEventListener("click", function (ev) { ev.stopPropagation(); self.setCollapsed(path, false); });
    this.overlay.insertBefore(g, this.overlay.firstChild);
  };

  // -- colouring ----------------------------------------------------------------------------
  View.prototype.applyColour = function () {
    if (!this.svg) return;
    var self = this;
    var mode = this.colour ? this.colour.value : "kind";
    var pick = function (n) { return mode === "value" ? n.value : n.grad; };
    var mags = this.nodes.map(function (n) { return magnitude(pick(n)); }).filter(function (m) { return m !== null; });
    var lo = mags.length ? Math.min.apply(null, mags) : 0;
    var hi = mags.length ? Math.max.apply(null, mags) : 0;
    this.nodes.forEach(function (n) {
      var g = self.nodeEls[n.id];
      if (!g) return;
      var fill = g.querySelector("polygon:not([fill='none']), path:not([fill='none'])");
      if (!fill) return;
      fill.setAttribute("fill", mode === "kind" ? g.getAttribute("data-fill") : self.colourFor(pick(n), lo, hi));
    });
    this.root.setAttribute("data-colour", mode);
    this.drawLegend(mode, lo, hi);
  };

  View.prototype.colourFor = function (s, lo, hi) {
    var c = category(s);
    if (c === "bad") return BAD;
    if (c === "zero") return ZERO;
    if (c === "none") return NONE;
    return ramp(hi > lo ? (magnitude(s) - lo) / (hi - lo) : 0.5);
  };

  View.prototype.drawLegend = function (mode, lo, hi) {
    var box = this.legend;
    if (!box) return;
    box.textContent = "";
    if (mode === "kind") return;
    var swatch = function (colour, text) {
      var s = el("span", "gv-swatch");
      s.style.background = colour;
      box.appendChild(s);
      box.appendChild(el("span", "", text));
    };
    box.appendChild(el("span", "", "rms " + fmtNumber(Math.pow(10, lo), true)));
    var r = el("span", "gv-ramp");
    r.style.background = "linear-gradient(to right," + [0, 0.5, 1].map(ramp).join(",") + ")";
    box.appendChild(r);
    box.appendChild(el("span", "", fmtNumber(Math.pow(10, hi), true)));
    swatch(ZERO, "zero");
    swatch(BAD, "nan/inf");
  };

  // -- controls -----------------------------------------------------------------------------
  View.prototype.bindControls = function () {
    var self = this;
    if (this.search) {
      this.search.addEventListener("input", function () { self.runSearch(self.search.value, false); });
      this.search.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter") { ev.preventDefault(); self.nextMatch(); }
        if (ev.key === "Escape") { self.search.value = ""; self.runSearch("", false); }
      });
    }
    if (this.colour) this.colour.addEventListener("change", function () { self.applyColour(); });
    var on = function (cls, fn) {
      var b = self.root.querySelector(cls);
      if (b) b.addEventListener("click", fn);
    };
    on(".gv-fit", function () { if (self.svg) self.fit(); });
    on(".gv-zoom-in", function () { if (self.svg) self.zoom(1 / 1.4); });
    on(".gv-zoom-out", function () { if (self.svg) self.zoom(1.4); });
    on(".gv-collapse-all", function () { self.setAll(true); });
    on(".gv-expand-all", function () { self.setAll(false); });
    this.root.querySelectorAll(".gv-info [data-goto]").forEach(function (b) {
      b.addEventListener("click", function () { self.select(Number(b.getAttribute("data-goto")), true); });
    });
    if (this.root.classList.contains("gv-page")) {
      document.addEventListener("keydown", function (ev) {
        if (ev.target === self.search) return;
        if (ev.key === "/") { ev.preventDefault(); self.search.focus(); }
        if (ev.key === "f" && self.svg) self.fit();
        if (ev.key === "Escape") self.select(null, false);
      });
    }
  };

  View.prototype.setAll = function (on) {
    var self = this;
    this.modulePaths().paths.forEach(function (p) {
      if (p.indexOf(".") < 0 || !on) self.setCollapsed(p, on);
    });
  };

  View.prototype.applyHash = function (opts) {
    if (opts.colour && this.colour) {
      this.colour.value = opts.colour;
      this.applyColour();
    }
    if (opts.collapse) this.setCollapsed(opts.collapse, true);
    if (opts.search !== undefined && this.search) {
      this.search.value = opts.search;
      this.runSearch(opts.search, true);
    }
    if (opts.node !== undefined && this.nodes[Number(opts.node)]) this.select(Number(opts.node), true);
  };

  function init(root) {
    if (root.getAttribute("data-gv-ready")) return;
    var data = root.querySelector("script.gv-data");
    if (!data) return;
    try {
      new View(root, JSON.parse(data.textContent)).start();
    } catch (err) {
      root.setAttribute("data-gv-error", String(err && err.message || err));
      throw err;
    }
  }

  document.querySelectorAll(".gradviz").forEach(init);
})();
