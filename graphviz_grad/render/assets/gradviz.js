// gradviz explorer: the autograd graph laid out in the page with Graphviz (Viz.js, WebAssembly).
// Reads the compact columnar graph (render/html_data.py) from the JSON block of each .gradviz
// element, decides what is visible (module calls collapsed or expanded, identical siblings folded
// into one node, the far end of a huge graph elided), writes the DOT of that in the style of
// render/dot.py and lays it out again after every expand or collapse. User text goes into the
// DOM only through textContent, and into DOT only through escapeLabel, so names cannot inject
// markup.
(function () {
  "use strict";
  var SVGNS = "http://www.w3.org/2000/svg";
  var MISSING = "\u2014";
  var RAMP = [[239, 243, 255], [254, 227, 145], [252, 141, 89]];
  var ZERO = "#d9d9d9";
  var BAD = "#ff6b6b";
  var NONE = "#ffffff";
  // render/dot.py and views/_draw.py
  var FILL = { leaf: "#cfe8fc", root: "#fdd0b1", op: "#ececec", other: "#f4f4f4",
    input: "#f7f7f7", constant: "#f7f7f7",
    module: "#fff4cc", fold: "#e8def8", elided: "#f4f4f4" };
  var BORDER = "#555555";
  var BORDER_BAD = "#d62728";
  var SEVERITY_COLOR = { error: "#d62728", warning: "#ff7f0e", info: "#1f77b4" };
  var RANK = { error: 0, warning: 1, info: 2 };
  var CLUSTER_COLOR = "#9a9a9a";
  var MAX_PARAMS = 6;
  var MAX_LINKS = 50;
  //: The first drawing shows at most this many nodes when module levels allow it.
  var FIRST_VIEW = 60;
  //: Without modules to collapse, nodes beyond this many (nearest the root first) are elided.
  var ELIDE_AT = 200;
  //: Drawn nodes above which Graphviz is told to spend less effort on crossings.
  var BIG_LAYOUT = 400;
  //: A chain of single-input, single-use ops keeps this many nodes drawn at each end; the rest
  //: folds into one node (a 100k-op chain opens as a few nodes, not a sliver).
  var CHAIN_ENDS = 3;
  //: "#expand=all" draws at most this many nodes (the rest is elided, nearest the root kept).
  var MAX_DRAWN = 6000;

  // -- small helpers (text only, never innerHTML) -----------------------------------------------
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

  function fmtCount(n) {
    return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  // Text made safe for a Graphviz HTML-like label, as render/dot.py's html() does.
  var LABEL_ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;",
    "\\": "&#92;", "{": "&#123;", "}": "&#125;", "\n": "<br/>", "\r": "", "\t": " " };
  function escapeLabel(text) {
    return String(text).replace(/[&<>"'\\{}\n\r\t]|[\u0000-\u001f\u007f-\u009f\ud800-\udfff]/g, function (c) {
      return LABEL_ESCAPES[c] !== undefined ? LABEL_ESCAPES[c] : "\ufffd";
    });
  }

  function tr1(text, bold) {
    return "<tr><td colspan=\"2\">" + (bold ? "<b>" + text + "</b>" : text) + "</td></tr>";
  }

  function tr2(head, body) {
    return "<tr><td align=\"left\">" + head + "</td><td align=\"left\">" + body + "</td></tr>";
  }

  function ramp(t) {
    var x = Math.min(1, Math.max(0, t)) * (RAMP.length - 1);
    var i = Math.min(RAMP.length - 2, Math.floor(x));
    var u = x - i;
    var c = RAMP[i].map(function (a, k) { return Math.round(a + (RAMP[i + 1][k] - a) * u); });
    return "rgb(" + c.join(",") + ")";
  }

  var vizReady = null;
  function viz() {
    if (!vizReady) {
      vizReady = typeof Viz !== "undefined" && Viz.instance
        ? Viz.instance()
        : Promise.reject(new Error("the Graphviz WebAssembly script is missing"));
    }
    return vizReady;
  }

  // -- the graph, read from columns -----------------------------------------------------------
  function Graph(d) {
    if (d.version !== 1) throw new Error("unknown gradviz page data version " + d.version);
    var self = this;
    this.d = d;
    this.n = d.count;
    this.S = d.strings;
    this.roots = d.roots;
    this.isRoot = {};
    d.roots.forEach(function (r) { self.isRoot[r] = true; });
    var E = d.edges;
    this.inputs = [];
    this.consumers = [];
    for (var i = 0; i < this.n; i++) { this.inputs.push([]); this.consumers.push([]); }
    for (var k = 0; k < E.src.length; k++) {
      this.inputs[E.dst[k]].push(k);
      this.consumers[E.src[k]].push(k);
    }
    var C = d.calls;
    this.nc = C.path.length;
    this.level = new Int32Array(this.nc);
    this.maxLevel = -1;
    this.children = [];
    for (var c = 0; c < this.nc; c++) {
      this.level[c] = C.parent[c] < 0 ? 0 : this.level[C.parent[c]] + 1;
      this.maxLevel = Math.max(this.maxLevel, this.level[c]);
      this.children.push([]);
      if (C.parent[c] >= 0) this.children[C.parent[c]].push(c);
    }
    this.families = [];
    C.family.forEach(function (f, c) {
      if (f < 0) return;
      (self.families[f] = self.families[f] || []).push(c);
    });
    this.families.forEach(function (fam) {
      fam.sort(function (a, b) {
        return self.callPath(a).localeCompare(self.callPath(b), "en", { numeric: true }) ||
          C.number[a] - C.number[b];
      });
    });
    // A run of folded siblings is drawn with the id of its first call.
    this.nf = this.nc;
    this.sibling = this.siblingOrder();
    this.isParam = this.params();
    this.findingsOf = {};
    d.findings.forEach(function (f, k) {
      f.nodes.forEach(function (id) { (self.findingsOf[id] = self.findingsOf[id] || []).push(k); });
    });
    this.stepAt = {};
    d.steps.node.forEach(function (id, k) { self.stepAt[id] = k; });
  }

  Graph.prototype.siblingOrder = function () {
    // Each call's position among its parent's children (by path, numbers compared as numbers,
    // then call number): identical siblings fold only where they sit next to each other.
    var self = this;
    var C = this.d.calls;
    var groups = {};
    for (var c = 0; c < this.nc; c++) (groups[C.parent[c]] = groups[C.parent[c]] || []).push(c);
    var at = new Int32Array(this.nc);
    Object.keys(groups).forEach(function (key) {
      groups[key].sort(function (a, b) {
        return self.callPath(a).localeCompare(self.callPath(b), "en", { numeric: true }) ||
          C.number[a] - C.number[b];
      }).forEach(function (c, k) { at[c] = k; });
    });
    return at;
  };

  Graph.prototype.params = function () {
    // Leaves named like a parameter of a module that ran ("model.0.weight" when "model.0"
    // ran): they are drawn inside their module. Inputs such as "x" are not.
    var paths = {};
    var found = new Uint8Array(this.n);
    for (var c = 0; c < this.nc; c++) paths[this.callPath(c)] = true;
    for (var i = 0; i < this.n; i++) {
      if (this.kind(i) === "constant") found[i] = 1;  // a number goes where its op goes
      if (this.kind(i) !== "leaf") continue;
      var names = (this.str("names", i) || this.str("op", i) || "").split(", ");
      found[i] = names.some(function (name) {
        var cut = name.lastIndexOf(".");
        return cut > 0 && paths[name.slice(0, cut)] === true;
      }) ? 1 : 0;
    }
    return found;
  };

  Graph.prototype.str = function (col, i) {
    var k = this.d[col][i];
    return k < 0 ? null : this.S[k];
  };
  Graph.prototype.kind = function (i) { return this.S[this.d.kind[i]]; };
  Graph.prototype.callPath = function (c) { return this.S[this.d.calls.path[c]]; };
  Graph.prototype.callType = function (c) { return this.S[this.d.calls.type[c]]; };
  Graph.prototype.label = function (i) {
    var names = this.str("names", i);
    return names ? names.split(", ")[0] : this.str("op", i);
  };

  // -- what is drawn --------------------------------------------------------------------------
  // Drawn ids: node i is i, a collapsed call c is n + c, a run of two or more consecutive
  // collapsed identical siblings starting at call c is n + nc + c, the elided rest n + 2 nc.
  function Plan(g, state) {
    this.g = g;
    this.owner = new Int32Array(g.n);
    this.items = [];
    this.members = {};
    this.folds(state);
    this.assign(state);
  }

  Plan.prototype.folds = function (state) {
    // Identical siblings that are collapsed next to each other fold into one node (×N).
    var runOf = (this.runOf = new Int32Array(this.g.nc).fill(-1));
    var runs = (this.runs = {});
    var self = this;
    this.g.families.forEach(function (fam) {
      var run = [];
      var close = function () {
        if (run.length > 1) {
          runs[run[0]] = run;
          run.forEach(function (c) { runOf[c] = run[0]; });
        }
        run = [];
      };
      var sib = self.g.sibling;
      fam.forEach(function (c) {
        if (run.length && sib[c] !== sib[run[run.length - 1]] + 1) close();
        if (state.expanded[c]) close(); else run.push(c);
      });
      close();
    });
  };

  Plan.prototype.groupOf = function (i, state) {
    var g = this.g;
    var outer = -1;
    for (var c = g.d.call[i]; c >= 0; c = g.d.calls.parent[c]) if (!state.expanded[c]) outer = c;
    if (outer < 0) return i;
    return this.runOf[outer] >= 0 ? g.n + g.nc + this.runOf[outer] : g.n + outer;
  };

  Plan.prototype.assign = function (state) {
    var g = this.g;
    var owner = this.owner;
    var i;
    for (i = 0; i < g.n; i++) owner[i] = g.kind(i) === "op" || g.d.call[i] >= 0 ? this.groupOf(i, state) : i;
    for (i = 0; i < g.n; i++) {
      // A leaf or input used only inside one collapsed group (a module's parameter) goes with it.
      if (owner[i] !== i || !g.isParam[i] || !g.consumers[i].length) continue;
      var first = owner[g.d.edges.dst[g.consumers[i][0]]];
      if (first < g.n) continue;
      var same = g.consumers[i].every(function (k) { return owner[g.d.edges.dst[k]] === first; });
      if (same) owner[i] = first;
    }
    if (!state.all) this.foldChains(state);
    if (state.limit) this.elide(state.limit);
    var seen = {};
    for (i = 0; i < g.n; i++) {
      var o = owner[i];
      if (!seen[o]) { seen[o] = true; this.items.push(o); this.members[o] = []; }
      this.members[o].push(i);
    }
  };

  Plan.prototype.foldChains = function (state) {
    // Long chains of drawn nodes (ops, or collapsed modules and folds), each with one drawn
    // input and one drawn use, keep their ends; each long hidden stretch becomes one node. Its
    // id is base + its first element; state.chains[chain's first element] lists the elements
    // opened by a click or a search (element -> how many neighbours each side to show).
    var g = this.g;
    var owner = this.owner;
    var E = g.d.edges;
    var size = g.n + 2 * g.nc + 1;
    var ins = new Int32Array(size);
    var outs = new Int32Array(size);
    var next = new Int32Array(size).fill(-1);
    var prev = new Int32Array(size).fill(-1);
    var seen = new Set();
    for (var k = 0; k < E.src.length; k++) {
      var a = owner[E.src[k]];
      var b = owner[E.dst[k]];
      if (a === b || seen.has(a + ">" + b)) continue;
      seen.add(a + ">" + b);
      ins[b]++; prev[b] = a;
      outs[a]++; next[a] = b;
    }
    var drawn = new Uint8Array(size);
    for (var i = 0; i < g.n; i++) drawn[owner[i]] = 1;
    var linear = function (v) {
      if (v < 0 || v >= size - 1 || !drawn[v] || ins[v] !== 1 || outs[v] !== 1) return false;
      return v >= g.n || g.kind(v) === "op";
    };
    // A chain stays inside one module frame: its elements share the call they are drawn in.
    var frame = function (o) {
      if (o < g.n) return g.d.call[o];
      return g.d.calls.parent[o < g.n + g.nc ? o - g.n : o - g.n - g.nc];
    };
    this.preChain = Int32Array.from(owner);
    this.chains = {};
    var base = size;
    var moved = new Map();
    for (var v = 0; v < size - 1; v++) {
      if (!linear(v) || (linear(prev[v]) && frame(prev[v]) === frame(v))) continue;
      var chain = [];
      for (var u = v; linear(u) && frame(u) === frame(v) && chain.length < size; u = next[u]) chain.push(u);
      if (chain.length < 2 * CHAIN_ENDS + 4) continue;
      var shown = new Uint8Array(chain.length);
      var reveal = function (at, radius) {
        for (var q = Math.max(0, at - radius); q <= Math.min(chain.length - 1, at + radius); q++) shown[q] = 1;
      };
      reveal(0, CHAIN_ENDS - 1);
      reveal(chain.length - 1, CHAIN_ENDS - 1);
      var wants = state.chains[v] || {};
      chain.forEach(function (element, at) { if (wants[element]) reveal(at, wants[element]); });
      this.hideRuns(chain, shown, base, v, moved);
    }
    if (moved.size) for (i = 0; i < g.n; i++) if (moved.has(owner[i])) owner[i] = moved.get(owner[i]);
  };

  Plan.prototype.hideRuns = function (chain, shown, base, key, moved) {
    // Each stretch of at least 4 hidden elements becomes one drawn node; shorter ones stay.
    var start = -1;
    for (var at = 0; at <= chain.length; at++) {
      if (at < chain.length && !shown[at]) { if (start < 0) start = at; continue; }
      if (start >= 0 && at - start >= 4) {
        var middle = chain.slice(start, at);
        var id = base + middle[0];
        middle.forEach(function (m) { moved.set(m, id); });
        this.chains[id] = { key: key, nodes: chain, middle: middle, first: start };
      }
      start = -1;
    }
  };

  Plan.prototype.count = function () {
    var seen = new Set();
    for (var i = 0; i < this.g.n; i++) seen.add(this.owner[i]);
    return seen.size;
  };

  Plan.prototype.elide = function (limit) {
    // Keep the `limit` drawn nodes nearest the root; the rest becomes one node saying so.
    var g = this.g;
    var owner = this.owner;
    if (this.count() <= limit) return;
    var dist = g.distances();
    var best = {};
    for (var i = 0; i < g.n; i++) {
      var o = owner[i];
      if (best[o] === undefined || dist[i] < best[o]) best[o] = dist[i];
    }
    var drawn = Object.keys(best).map(Number).sort(function (a, b) { return best[a] - best[b] || a - b; });
    var keep = {};
    drawn.slice(0, limit - 1).forEach(function (o) { keep[o] = true; });
    var rest = g.n + g.nc + g.nf;
    for (i = 0; i < g.n; i++) if (!keep[owner[i]]) owner[i] = rest;
  };

  Graph.prototype.distances = function () {
    // Edges from each root, breadth first over inputs (no recursion).
    if (this.dist) return this.dist;
    var dist = new Int32Array(this.n).fill(0x3fffffff);
    var queue = [];
    var self = this;
    this.roots.forEach(function (r) { if (r < self.n) { dist[r] = 0; queue.push(r); } });
    for (var h = 0; h < queue.length; h++) {
      var v = queue[h];
      this.inputs[v].forEach(function (k) {
        var u = self.d.edges.src[k];
        if (dist[u] > dist[v] + 1) { dist[u] = dist[v] + 1; queue.push(u); }
      });
    }
    this.dist = dist;
    return dist;
  };

  // -- the view ------------------------------------------------------------------------------
  function View(root, data) {
    this.root = root;
    this.g = new Graph(data);
    this.canvas = root.querySelector(".gv-canvas");
    this.status = root.querySelector(".gv-status");
    this.details = root.querySelector(".gv-details");
    this.search = root.querySelector(".gv-search");
    this.count = root.querySelector(".gv-count");
    this.colour = root.querySelector(".gv-colour");
    this.legend = root.querySelector(".gv-legend");
    this.modulesBox = root.querySelector(".gv-modules");
    this.stepLabel = root.querySelector(".gv-step-label");
    this.svg = null;
    this.selected = null;
    this.matches = [];
    this.matchAt = -1;
    this.step = null;
    this.state = {
      expanded: new Uint8Array(this.g.nc),
      limit: 0,
      chains: {},
      all: false
    };
    this.layouts = 0;
  }

  View.prototype.start = function () {
    var self = this;
    this.firstState();
    this.bindControls();
    this.buildModules();
    var opts = this.root.classList.contains("gv-page") ? parseHash(window.location.hash) : {};
    this.applyHashState(opts);
    return this.layout().then(function () {
      self.applyHashView(opts);
      self.root.setAttribute("data-gv-ready-ms", String(Math.round(performance.now())));
      self.root.setAttribute("data-gv-ready", "1");
      if (self.root.classList.contains("gv-page")) {
        window.addEventListener("hashchange", function () {
          var o = parseHash(window.location.hash);
          self.applyHashState(o);
          self.layout().then(function () { self.applyHashView(o); });
        });
      }
    });
  };

  View.prototype.firstState = function () {
    // The deepest module level whose drawing has at most FIRST_VIEW nodes (repeated blocks
    // folded); everything when the graph is that small; elided beyond ELIDE_AT otherwise.
    var g = this.g;
    var s = this.state;
    for (var d = g.maxLevel + 1; d >= 0; d--) {
      for (var c = 0; c < g.nc; c++) s.expanded[c] = g.level[c] < d ? 1 : 0;
      if (d === 0 || new Plan(g, s).count() <= FIRST_VIEW) break;
    }
    s.limit = new Plan(g, s).count() > ELIDE_AT ? ELIDE_AT : 0;
  };

  View.prototype.plan = function () {
    this.current = new Plan(this.g, this.state);
    return this.current;
  };

  // -- DOT ------------------------------------------------------------------------------------
  View.prototype.dotName = function (o) {
    var g = this.g;
    if (o < g.n) return "n" + o;
    if (o < g.n + g.nc) return "c" + (o - g.n);
    if (o < g.n + g.nc + g.nf) return "f" + (o - g.n - g.nc);
    if (o > g.n + 2 * g.nc) return "k" + (o - g.n - 2 * g.nc - 1);
    return "e0";
  };

  View.prototype.valueRows = function (value, grad, bad, prefix) {
    var g = this.g;
    var gradText = escapeLabel(g.S[grad]);
    if (bad) gradText = "<font color=\"" + BORDER_BAD + "\">" + gradText + "</font>";
    return tr2(prefix + "value", escapeLabel(g.S[value])) + tr2(prefix + "grad", gradText);
  };

  View.prototype.nodeLabel = function (i) {
    var g = this.g;
    var kind = g.kind(i);
    var rows = [];
    if (kind === "constant") return tr1(escapeLabel(g.str("op", i)), true) + tr1("constant");
    if (kind === "input") {
      // An input needs no gradient: its name, type and value, as render/dot.py draws it.
      rows.push(tr1("<b>" + escapeLabel(g.str("op", i)) + "</b> input"));
      if (g.str("type", i)) rows.push(tr1(escapeLabel(g.str("type", i))));
      rows.push(tr2("value", escapeLabel(g.S[g.d.value[i]])));
      return rows.join("");
    }
    if (kind === "op") rows.push(tr1(escapeLabel(g.str("op", i)), true));
    else rows.push(tr1((g.str("op", i) !== kind ? "<b>" + escapeLabel(g.str("op", i)) + "</b> " : "") + escapeLabel(kind)));
    var names = g.str("names", i);
    if (names) rows.push(tr1(escapeLabel(names)));
    var type = g.str("type", i);
    if (type) rows.push(tr1(escapeLabel(type)));
    var outs = g.d.outputs[String(i)];
    var self = this;
    if (outs) outs.forEach(function (o, nr) { rows.push(self.valueRows(o[0], o[1], false, "out" + nr + " ")); });
    else rows.push(this.valueRows(g.d.value[i], g.d.grad[i], g.d.bad[i], ""));
    return rows.join("");
  };

  View.prototype.nodeStmt = function (i) {
    var g = this.g;
    var border = g.d.bad[i] ? "2" : "1";
    var color = g.d.bad[i] ? BORDER_BAD : BORDER;
    var marks = g.findingsOf[i];
    if (marks) {
      var worst = marks.map(function (k) { return g.d.findings[k].severity; })
        .sort(function (a, b) { return RANK[a] - RANK[b]; })[0];
      border = "3";
      color = SEVERITY_COLOR[worst] || BORDER;
    }
    var kind = g.kind(i);
    var fill = g.isRoot[i] ? FILL.root : FILL[kind] || FILL.other;
    return "n" + i + " [label=<<table border=\"" + border + "\" cellborder=\"0\" cellspacing=\"0\" " +
      "cellpadding=\"3\" color=\"" + color + "\" bgcolor=\"" + fill + "\">" + this.nodeLabel(i) + "</table>>];";
  };

  View.prototype.groupInfo = function (o) {
    // Members, the op count, the member whose output leaves the group (nearest the root) and
    // the absorbed parameters.
    var g = this.g;
    var plan = this.current;
    var members = plan.members[o] || [];
    var ops = 0;
    var output = -1;
    var params = [];
    members.forEach(function (i) {
      var op = g.kind(i) === "op";
      if (op) ops++;
      else if (g.isParam[i] && g.kind(i) === "leaf") params.push(i);
      if (!op || output >= 0) return;
      var leaves = g.isRoot[i] || g.consumers[i].some(function (k) { return plan.owner[g.d.edges.dst[k]] !== o; });
      if (leaves) output = i;
    });
    if (output < 0) output = members.filter(function (i) { return g.kind(i) === "op"; })[0];
    return { members: members, ops: ops, output: output === undefined ? -1 : output, params: params };
  };

  View.prototype.groupTitle = function (o) {
    var g = this.g;
    if (o < g.n + g.nc) {
      var c = o - g.n;
      return { title: g.callPath(c), type: g.callType(c), repeat: 1 };
    }
    var fam = this.current.runs[o - g.n - g.nc];
    var first = g.callPath(fam[0]);
    var last = g.callPath(fam[fam.length - 1]);
    return { title: first === last ? first : first + " \u2026 " + last, type: g.callType(fam[0]),
      repeat: fam.length, last: last, start: fam[0] };
  };

  View.prototype.groupStmt = function (o) {
    var g = this.g;
    var name = this.dotName(o);
    var info = this.groupInfo(o);
    var rows = [];
    var fill;
    if (name.charAt(0) === "k") {
      fill = FILL.elided;
      var chain = this.current.chains[o];
      var what = chain.middle.every(function (m) { return m < g.n; }) ? " ops" : " nodes";
      rows.push(tr1(escapeLabel("\u22ef " + fmtCount(chain.middle.length) + what + " in a chain"), true));
      rows.push(tr1(escapeLabel(this.pattern(chain.middle))));
      rows.push(tr1(escapeLabel("click to draw 10 more at each end")));
    } else if (name === "e0") {
      fill = FILL.elided;
      rows.push(tr1(escapeLabel("\u22ef " + fmtCount(info.members.length) + " nodes farther from the root"), true));
      rows.push(tr1(escapeLabel(fmtCount(info.ops) + " ops elided to keep the page quick")));
      rows.push(tr1(escapeLabel("click to draw more of them")));
    } else {
      var t = this.groupTitle(o);
      fill = t.repeat > 1 ? FILL.fold : FILL.module;
      rows.push(tr1(escapeLabel(t.title + (t.repeat > 1 ? "  \u00d7" + t.repeat : "")), true));
      rows.push(tr1(escapeLabel((t.type || "module") + " \u00b7 hides " + fmtCount(info.ops) + " ops")));
      if (info.output >= 0) {
        var i = info.output;
        var type = g.str("type", i);
        var whose = t.repeat > 1 ? " (of " + this.instanceOf(i, t) + ")" : "";
        rows.push(tr1(escapeLabel("output " + (type || "") + whose)));
        rows.push(this.valueRows(g.d.value[i], g.d.grad[i], g.d.bad[i], ""));
      }
      // A fold lists the parameters of the instance its numbers come from.
      var inst = t.repeat > 1 ? this.instanceCall(info.output, t.start) : -1;
      var prefix = (inst >= 0 ? g.callPath(inst) : t.title) + ".";
      var params = info.params.filter(function (p) { return t.repeat === 1 || g.label(p).indexOf(prefix) === 0; });
      params.slice(0, MAX_PARAMS).forEach(function (p) {
        var label = g.label(p);
        if (prefix && label.indexOf(prefix) === 0) label = label.slice(prefix.length);
        rows.push(tr2(escapeLabel(label), escapeLabel("\u2016grad\u2016=" + (g.str("gnorm", p) || MISSING))));
      });
      if (params.length > MAX_PARAMS) rows.push(tr1(escapeLabel("+" + (params.length - MAX_PARAMS) + " more parameters")));
    }
    var border = name.charAt(0) === "f" ? "2" : "1";
    return name + " [label=<<table border=\"" + border + "\" cellborder=\"0\" cellspacing=\"0\" " +
      "cellpadding=\"3\" color=\"" + BORDER + "\" bgcolor=\"" + fill + "\">" + rows.join("") + "</table>>];";
  };

  View.prototype.pattern = function (nodes) {
    // "MulBackward0 → AddBackward0 ×49,997": the chain's ops as a repeated pattern when they
    // repeat with a short period, else the first few distinct ops.
    var g = this.g;
    var self = this;
    var ops = nodes.map(function (o) {
      if (o < g.n) return g.str("op", o);
      var c = o < g.n + g.nc ? o - g.n : o - g.n - g.nc;
      var runs = o < g.n + g.nc ? 1 : self.current.runs[c].length;
      return g.callType(c) + (runs > 1 ? " \u00d7" + runs : "");
    });
    for (var p = 1; p <= 4 && p * 2 <= ops.length; p++) {
      var periodic = true;
      for (var i = p; i < ops.length && periodic; i++) periodic = ops[i] === ops[i - p];
      if (periodic) {
        var unit = ops.slice(0, p).join(" \u2192 ");
        var times = Math.floor(ops.length / p);
        var rest = ops.length % p ? " (+" + (ops.length % p) + ")" : "";
        return unit + " \u00d7" + fmtCount(times) + rest;
      }
    }
    var distinct = ops.filter(function (op, k) { return ops.indexOf(op) === k; });
    return distinct.slice(0, 3).join(", ") + (distinct.length > 3 ? ", \u2026" : "");
  };

  View.prototype.instanceCall = function (i, start) {
    // The call of the fold starting at call `start` that node i ran in (-1 when none).
    var g = this.g;
    if (i < 0) return -1;
    for (var c = g.d.call[i]; c >= 0; c = g.d.calls.parent[c]) if (this.current.runOf[c] === start) return c;
    return -1;
  };

  View.prototype.instanceOf = function (i, t) {
    // Which instance of a fold node i belongs to: its path, or its call number.
    var c = this.instanceCall(i, t.start);
    if (c < 0) return t.last;
    var path = this.g.callPath(c);
    return path === t.title ? path + " call " + (this.g.families[this.g.d.calls.family[c]].indexOf(c) + 1) : path;
  };

  View.prototype.placeOf = function (o) {
    // The expanded call whose cluster holds drawn node o (-1: the top level).
    var g = this.g;
    var plan = this.current;
    if (o < g.n) {
      if (g.d.call[o] >= 0) return g.d.call[o];
      if (!g.isParam[o]) return -1;
      var places = g.consumers[o].map(function (k) {
        var dst = plan.owner[g.d.edges.dst[k]];
        return dst === o ? -2 : dst < g.n ? g.d.call[dst] : -1;
      });
      return places.length && places.every(function (p) { return p === places[0]; }) && places[0] >= 0 ? places[0] : -1;
    }
    if (o < g.n + g.nc) return g.d.calls.parent[o - g.n];
    if (o < g.n + g.nc + g.nf) return g.d.calls.parent[o - g.n - g.nc];
    if (o > g.n + 2 * g.nc) {
      var self = this;
      var calls = this.current.chains[o].middle.map(function (m) {
        return m < g.n ? g.d.call[m] : g.d.calls.parent[m < g.n + g.nc ? m - g.n : m - g.n - g.nc];
      });
      return calls.every(function (c) { return c === calls[0]; }) ? calls[0] : -1;
    }
    return -1;
  };

  View.prototype.toDot = function () {
    var g = this.g;
    var self = this;
    var plan = this.plan();
    var out = ["digraph gradviz {", "rankdir=TB;", "fontname=\"Helvetica\";",
      "node [shape=plain, fontname=\"Helvetica\", fontsize=10];",
      "edge [fontname=\"Helvetica\", fontsize=9, color=\"#444444\"];"];
    // Big drawings trade a few edge crossings for a layout in seconds instead of minutes.
    if (plan.items.length > BIG_LAYOUT) out.push("mclimit=0.2; nslimit=1; nslimit1=1; searchsize=10;");
    if (g.d.gradviz) out.push("label=<<i>gradients computed by gradviz (not by a backward call of the script)</i>>; labelloc=t;");
    // Edges first, in argument order per op: Graphviz then meets the inputs of an op left to
    // right (x before w in x * w), as the static pictures draw them.
    this.edgeStmts(out);
    var inside = {};
    plan.items.forEach(function (o) {
      var p = self.placeOf(o);
      (inside[p] = inside[p] || []).push(o);
      for (var c = p; c >= 0; c = g.d.calls.parent[c]) {
        var up = g.d.calls.parent[c];
        var kids = (inside["k" + up] = inside["k" + up] || {});
        if (kids[c]) break;
        kids[c] = true;
      }
    });
    var numbers = this.callNumbers(inside);
    var stack = [[-1, 0]];
    while (stack.length) {
      var top = stack.pop();
      var c = top[0];
      if (c === null) { out.push("}"); continue; }
      if (c >= 0) {
        var label = g.callPath(c) + " (" + g.callType(c) + ")" + (numbers[c] ? " [call " + numbers[c] + "]" : "");
        out.push("subgraph cluster_c" + c + " {", "label=<<b>" + escapeLabel(label) + "</b>>;",
          "style=\"rounded,dashed\"; color=\"" + CLUSTER_COLOR + "\"; fontsize=10; labeljust=l;");
        stack.push([null, 0]);
      }
      (inside[c] || []).forEach(function (o) { out.push(o < g.n ? self.nodeStmt(o) : self.groupStmt(o)); });
      var kids = Object.keys(inside["k" + c] || {}).map(Number).sort(function (a, b) { return b - a; });
      kids.forEach(function (k) { stack.push([k, 0]); });
    }
    out.push("}");
    return out.join("\n");
  };

  View.prototype.callNumbers = function (inside) {
    // A 1-based number per call of a module path that is drawn as several clusters.
    var g = this.g;
    var byPath = {};
    Object.keys(inside).forEach(function (key) {
      if (key.charAt(0) !== "k") return;
      Object.keys(inside[key]).forEach(function (c) {
        var p = g.callPath(Number(c));
        (byPath[p] = byPath[p] || []).push(Number(c));
      });
    });
    var numbers = {};
    Object.keys(byPath).forEach(function (p) {
      if (byPath[p].length < 2) return;
      byPath[p].sort(function (a, b) { return g.d.calls.number[a] - g.d.calls.number[b]; })
        .forEach(function (c, j) { numbers[c] = j + 1; });
    });
    return numbers;
  };

  View.prototype.edgeStmts = function (out) {
    var g = this.g;
    var E = g.d.edges;
    var owner = this.current.owner;
    var seen = new Set();
    for (var k = 0; k < E.src.length; k++) {
      var a = owner[E.src[k]];
      var b = owner[E.dst[k]];
      if (a === b) continue;
      var own = a === E.src[k] && b === E.dst[k];
      var key = own ? "e" + k : a + ">" + b;
      if (seen.has(key) || (!own && seen.has(a + ">" + b))) continue;
      seen.add(key);
      seen.add(a + ">" + b);
      var label = own && g.d.outputs[String(a)] ? " [label=<out" + E.output[k] + ">]" : "";
      out.push(this.dotName(a) + " -> " + this.dotName(b) + label + ";");
    }
  };

  // -- layout ---------------------------------------------------------------------------------
  View.prototype.layout = function () {
    var self = this;
    var dot = this.toDot();
    this.dot = dot;
    this.layouts += 1;
    var mine = this.layouts;
    if (this.status) this.status.textContent = "laying out " + fmtCount(this.current.items.length) + " nodes\u2026";
    return viz().then(function (v) {
      if (mine !== self.layouts) return;
      var t0 = performance.now();
      var svg = v.renderSVGElement(dot);
      self.root.setAttribute("data-gv-layout-ms", String(Math.round(performance.now() - t0)));
      self.show(svg);
    }).catch(function (err) {
      self.root.setAttribute("data-gv-error", String(err && err.message || err));
      if (self.status) self.status.textContent = "The in-page layout failed: " + String(err && err.message || err);
    });
  };

  View.prototype.show = function (svg) {
    var old = this.canvas.querySelector("svg");
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    svg.setAttribute("class", "gv-svg");
    svg.setAttribute("role", "img");
    svg.querySelectorAll("script, foreignObject").forEach(function (e) { e.remove(); });
    if (old) old.replaceWith(svg); else this.canvas.insertBefore(svg, this.canvas.firstChild);
    this.svg = svg;
    this.root.setAttribute("data-gv-drawn", String(this.current.items.length));
    if (this.status) this.status.textContent = "";
    this.indexSvg();
    this.setupViewBox();
    if (!this.panBound) { this.bindPanZoom(); this.panBound = true; }
    this.applyColour();
    this.markMatches();
    this.applyStep();
    if (this.selected !== null) this.ring(this.selected);
    this.syncModules();
  };

  View.prototype.indexSvg = function () {
    var self = this;
    var g = this.g;
    this.layer = this.svg.querySelector("g.graph") || this.svg;
    this.drawnEls = {};
    this.svg.querySelectorAll("g.node").forEach(function (e) {
      var title = e.querySelector("title");
      var m = /^([ncfek])(\d+)$/.exec(title ? title.textContent.trim() : "");
      if (!m) return;
      var k = Number(m[2]);
      var o = m[1] === "n" ? k : m[1] === "c" ? g.n + k : m[1] === "f" ? g.n + g.nc + k
        : m[1] === "k" ? g.n + 2 * g.nc + 1 + k : g.n + g.nc + g.nf;
      e.classList.add("gv-node");
      if (m[1] === "n") e.setAttribute("data-node", String(k));
      else {
        e.classList.add("gv-grouped");
        e.setAttribute("data-group", m[1] + k);
        if (m[1] === "c" || m[1] === "f") e.setAttribute("data-module", self.groupTitle(o).title);
      }
      var fill = e.querySelector("polygon:not([fill='none']), path:not([fill='none'])");
      if (fill) e.setAttribute("data-fill", fill.getAttribute("fill") || "");
      self.drawnEls[o] = e;
      if (m[1] === "n") {
        e.addEventListener("mouseenter", function () { self.preview(k); });
        e.addEventListener("mouseleave", function () { self.preview(null); });
      }
      e.addEventListener("click", function (ev) { ev.stopPropagation(); self.clickDrawn(o); });
    });
    this.svg.querySelectorAll("g.cluster").forEach(function (e) {
      var title = e.querySelector("title");
      var m = /^cluster_c(\d+)$/.exec(title ? title.textContent.trim() : "");
      if (!m) return;
      var c = Number(m[1]);
      e.classList.add("gv-cluster");
      e.setAttribute("data-module", g.callPath(c));
      var label = e.querySelector("text");
      if (!label) return;
      label.classList.add("gv-collapse");
      var tip = svgEl("title");
      tip.textContent = "Click to collapse " + g.callPath(c);
      label.appendChild(tip);
      label.addEventListener("click", function (ev) { ev.stopPropagation(); self.collapseCall(c); });
    });
    this.svg.querySelectorAll("g.edge").forEach(function (e) { e.classList.add("gv-edge"); });
    this.overlay = svgEl("g", { "class": "gv-overlay" });
    this.layer.appendChild(this.overlay);
  };

  // -- expanding and collapsing ---------------------------------------------------------------
  View.prototype.clickDrawn = function (o) {
    var g = this.g;
    var self = this;
    if (o < g.n) { this.select(o, false); return; }
    var near = this.groupInfo(o).output;
    if (o < g.n + g.nc) { this.expandCall(o - g.n); }
    else if (o < g.n + g.nc + g.nf) {
      // A fold opens at the instance whose numbers it shows.
      var shown = this.instanceCall(this.groupInfo(o).output, o - g.n - g.nc);
      this.expandCall(shown >= 0 ? shown : o - g.n - g.nc);
    }
    else if (o > g.n + 2 * g.nc) {
      // Draw more of a folded chain: 9 more nodes at each end of this stretch.
      var chain = this.current.chains[o];
      var wants = (this.state.chains[chain.key] = this.state.chains[chain.key] || {});
      wants[chain.middle[0]] = 9;
      wants[chain.middle[chain.middle.length - 1]] = 9;
    }
    else { this.state.limit = this.state.limit * 2; }
    this.showGroup(o);
    // After the new layout, keep what was opened in view (zoomed in if it would be tiny).
    this.layout().then(function () { if (near >= 0) self.focus(near); });
  };

  View.prototype.expandCall = function (c) {
    var g = this.g;
    for (var k = c; k >= 0; k = g.d.calls.parent[k]) this.state.expanded[k] = 1;
  };

  View.prototype.collapseCall = function (c) {
    var g = this.g;
    var s = this.state;
    var stack = [c];
    while (stack.length) {
      var k = stack.pop();
      s.expanded[k] = 0;
      g.children[k].forEach(function (child) { stack.push(child); });
    }
    this.layout();
  };

  View.prototype.expandFor = function (id) {
    // Make node `id` drawn as itself: expand the calls around it, un-elide it.
    var g = this.g;
    if (g.d.call[id] >= 0) this.expandCall(g.d.call[id]);
    var p = new Plan(g, this.state);
    var o = p.owner[id];
    if (o >= g.n && o < g.n + g.nc + g.nf && g.d.call[id] < 0) {
      // a parameter inside a collapsed module: open the module of its first consumer
      var k = g.consumers[id][0];
      if (k !== undefined && g.d.call[g.d.edges.dst[k]] >= 0) this.expandCall(g.d.call[g.d.edges.dst[k]]);
      p = new Plan(g, this.state);
    }
    var chain = p.chains && p.chains[p.owner[id]];
    if (chain) {
      // Open the chain around the node (or the module holding it), two neighbours each side.
      (this.state.chains[chain.key] = this.state.chains[chain.key] || {})[p.preChain[id]] = 2;
      p = new Plan(g, this.state);
      if (p.owner[id] >= g.n && g.d.call[id] >= 0) {
        this.expandCall(g.d.call[id]);
        p = new Plan(g, this.state);
      }
    }
    if (p.owner[id] === g.n + g.nc + g.nf) {
      var limit = this.state.limit;
      var probe = { expanded: this.state.expanded, chains: this.state.chains, all: this.state.all, limit: limit };
      while (limit < g.n && new Plan(g, probe).owner[id] === g.n + g.nc + g.nf) probe.limit = limit *= 2;
      this.state.limit = limit >= g.n ? 0 : limit;
    }
  };

  View.prototype.setAll = function (on) {
    // Expand all: every op drawn as itself (up to MAX_DRAWN); collapse all: the first view.
    var g = this.g;
    for (var c = 0; c < g.nc; c++) this.state.expanded[c] = on ? 1 : 0;
    this.state.all = on;
    this.state.chains = {};
    this.state.limit = on ? (g.n > MAX_DRAWN ? MAX_DRAWN : 0) : (new Plan(g, this.state).count() > ELIDE_AT ? ELIDE_AT : 0);
  };

  View.prototype.callsAt = function (path) {
    var g = this.g;
    var found = [];
    for (var c = 0; c < g.nc; c++) {
      var p = g.callPath(c);
      if (p === path || p.indexOf(path + ".") === 0) found.push(c);
    }
    return found;
  };

  View.prototype.buildModules = function () {
    var box = this.modulesBox;
    if (!box) return;
    var g = this.g;
    var self = this;
    var paths = {};
    for (var c = 0; c < g.nc; c++) {
      var p = g.callPath(c);
      if (!paths[p]) paths[p] = { calls: [], type: g.callType(c), level: g.level[c] };
      paths[p].calls.push(c);
    }
    this.moduleInputs = {};
    this.modulePaths = paths;
    Object.keys(paths).sort(function (a, b) { return a.localeCompare(b, "en", { numeric: true }); }).forEach(function (p) {
      var info = paths[p];
      var label = el("label");
      var cb = el("input");
      cb.type = "checkbox";
      cb.setAttribute("data-module", p);
      cb.addEventListener("change", function () {
        if (cb.checked) info.calls.forEach(function (c) { self.expandCall(c); });
        else info.calls.forEach(function (c) { self.state.expanded[c] = 0; });
        self.layout();
      });
      self.moduleInputs[p] = cb;
      label.appendChild(document.createTextNode(new Array(info.level + 1).join("  ")));
      label.appendChild(cb);
      var calls = info.calls.length > 1 ? " \u00d7" + info.calls.length : "";
      label.appendChild(document.createTextNode(" " + p + " (" + info.type + ")" + calls));
      label.title = p;
      box.appendChild(label);
    });
  };

  View.prototype.syncModules = function () {
    var self = this;
    if (!this.moduleInputs) return;
    Object.keys(this.moduleInputs).forEach(function (p) {
      self.moduleInputs[p].checked = self.modulePaths[p].calls.some(function (c) { return self.state.expanded[c]; });
    });
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
    if (!this.base) return;
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
    if (!this.svg) return;
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
      if (ev.button !== 0 || !self.svg) return;
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

  View.prototype.boxOf = function (e) {
    var b = e.getBBox();
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

  View.prototype.drawnOf = function (id) {
    return this.current ? this.drawnEls[this.current.owner[id]] : null;
  };

  View.prototype.focus = function (id) {
    var e = this.drawnOf(id);
    if (!e || !this.box) return;
    var b = this.boxOf(e);
    var c = this.layerToSvg(b.x + b.w / 2, b.y + b.h / 2);
    var ctm = this.svg.getScreenCTM();
    var px = ctm ? b.w * ctm.a : 160;
    var k = px > 0 && px < 100 ? px / 160 : 1;
    this.setBox({ x: c.x - this.box.w * k / 2, y: c.y - this.box.h * k / 2, w: this.box.w * k, h: this.box.h * k });
  };

  // -- search -------------------------------------------------------------------------------
  View.prototype.words = function (i) {
    var g = this.g;
    var words = [g.str("op", i), g.str("kind", i), g.str("aten", i), g.str("module", i)];
    var names = g.str("names", i);
    if (names) words = words.concat(names.split(", "));
    for (var c = g.d.call[i]; c >= 0; c = g.d.calls.parent[c]) words.push(g.callPath(c), g.callType(c));
    return words.filter(Boolean).map(function (w) { return w.toLowerCase(); });
  };

  View.prototype.rank = function (i, q) {
    if (q === "#" + i) return 0;
    var words = this.words(i);
    if (words.indexOf(q) >= 0) return 1;
    if (words.some(function (w) { return w.indexOf(q) === 0; })) return 2;
    if (words.some(function (w) { return w.indexOf(q) >= 0; })) return 3;
    var where = (this.g.str("file", i) || "") + ":" + (this.g.d.line[i] || "");
    return where.toLowerCase().indexOf(q) >= 0 ? 4 : -1;
  };

  View.prototype.runSearch = function (text) {
    var q = String(text || "").trim().toLowerCase();
    this.matches = [];
    this.matchAt = -1;
    if (q) {
      var ranked = [];
      for (var i = 0; i < this.g.n; i++) {
        var r = this.rank(i, q);
        if (r >= 0) ranked.push([r, i]);
      }
      ranked.sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; });
      this.matches = ranked.map(function (p) { return p[1]; });
    }
    this.root.classList.toggle("gv-searching", !!q);
    var n = this.matches.length;
    this.count.textContent = q ? (n === 1 ? "1 match" : fmtCount(n) + " matches") : "";
    this.markMatches();
  };

  View.prototype.markMatches = function () {
    // A match is lit where it is drawn: its own node, or the collapsed module holding it.
    var self = this;
    if (!this.svg) return;
    this.svg.querySelectorAll(".gv-match").forEach(function (e) { e.classList.remove("gv-match"); });
    this.matches.forEach(function (id) {
      var e = self.drawnOf(id);
      if (e) e.classList.add("gv-match");
    });
  };

  View.prototype.nextMatch = function () {
    if (!this.matches.length) return Promise.resolve();
    this.matchAt = (this.matchAt + 1) % this.matches.length;
    var id = this.matches[this.matchAt];
    this.count.textContent = (this.matchAt + 1) + " of " + fmtCount(this.matches.length);
    return this.reveal(id);
  };

  View.prototype.reveal = function (id) {
    // Expand the path to node `id` (laying out again if that changed anything), select it.
    var self = this;
    var before = this.current ? this.current.owner[id] : -1;
    this.expandFor(id);
    var after = new Plan(this.g, this.state).owner[id];
    var ready = after !== before || !this.svg ? this.layout() : Promise.resolve();
    return ready.then(function () { self.select(id, true); });
  };

  // -- details ------------------------------------------------------------------------------
  View.prototype.nodeLink = function (id, suffix) {
    var self = this;
    var b = el("button", "gv-link", "#" + id + " " + (id < this.g.n ? this.g.label(id) : "?") + (suffix || ""));
    b.type = "button";
    b.addEventListener("click", function () { self.reveal(id); });
    return b;
  };

  View.prototype.render = function (id) {
    var g = this.g;
    var d = this.details;
    d.textContent = "";
    d.setAttribute("data-node", String(id));
    var kind = g.kind(id);
    d.appendChild(el("h2", "gv-node-title", "#" + id + " " + (kind === "op" ? g.str("op", id) : kind)));
    this.renderStep(d, id);
    var t = el("table", "gv-facts");
    var names = g.str("names", id) || (kind !== "op" ? g.str("op", id) : "");
    if (names) row(t, "names", names);
    row(t, "type", g.str("type", id) || "?");
    var outs = g.d.outputs[String(id)];
    var hideGrad = this.step !== null && !this.reached(id);
    if (outs) {
      outs.forEach(function (o, nr) {
        row(t, "out" + nr + " value", g.S[o[0]]);
        row(t, "out" + nr + " grad", hideGrad ? MISSING + " (not reached yet)" : g.S[o[1]]);
      });
    } else {
      row(t, "value", g.S[g.d.value[id]]);
      row(t, "grad", hideGrad ? MISSING + " (not reached yet)" : g.S[g.d.grad[id]]);
    }
    if (g.str("module", id)) row(t, "module", g.str("module", id));
    if (g.str("file", id)) row(t, "where", g.str("file", id) + (g.d.line[id] ? ":" + g.d.line[id] : ""));
    if (g.str("aten", id)) row(t, "aten op", g.str("aten", id));
    if (g.d.order[id] >= 0) row(t, "backward order", g.d.order[id]);
    d.appendChild(t);
    this.renderFindings(d, g.findingsOf[id] || []);
    this.renderPairs(d, "saved for backward", g.d.saved[String(id)]);
    this.renderPairs(d, "constant inputs", g.d.constants[String(id)]);
    this.renderEdges(d, "inputs", g.inputs[id], "src");
    this.renderEdges(d, "used by", g.consumers[id], "dst");
  };

  View.prototype.renderStep = function (d, id) {
    var g = this.g;
    var k = g.stepAt[id];
    if (k === undefined || this.step === null) return;
    var box = el("section", "gv-step-text");
    box.appendChild(el("div", "gv-step-title", g.S[g.d.steps.title[k]]));
    var t = el("table");
    g.d.steps.lines[k].forEach(function (pair) { row(t, g.S[pair[0]], g.S[pair[1]]); });
    box.appendChild(t);
    d.appendChild(box);
  };

  View.prototype.renderFindings = function (d, ks) {
    var g = this.g;
    if (!ks.length) return;
    d.appendChild(el("h3", "", "findings"));
    ks.forEach(function (k) {
      var f = g.d.findings[k];
      var p = el("div", "gv-finding");
      p.appendChild(el("span", "gv-sev-" + f.severity, f.severity + " " + f.code));
      p.appendChild(el("span", "gv-text", " " + f.message));
      if (f.where) p.appendChild(el("div", "gv-hint gv-text", f.where));
      if (f.hint) p.appendChild(el("div", "gv-hint gv-text", "hint: " + f.hint));
      d.appendChild(p);
    });
  };

  View.prototype.renderPairs = function (d, title, pairs) {
    var g = this.g;
    if (!pairs || !pairs.length) return;
    d.appendChild(el("h3", "", title));
    var t = el("table");
    pairs.forEach(function (p) { row(t, g.S[p[0]], g.S[p[1]]); });
    d.appendChild(t);
  };

  View.prototype.renderEdges = function (d, title, ks, end) {
    var g = this.g;
    var self = this;
    if (!ks || !ks.length) return;
    d.appendChild(el("h3", "", title + (ks.length > MAX_LINKS ? " (first " + MAX_LINKS + " of " + fmtCount(ks.length) + ")" : "")));
    var t = el("table");
    ks.slice(0, MAX_LINKS).forEach(function (k) {
      var other = g.d.edges[end][k];
      var nr = g.d.edges.output[k];
      row(t, (end === "src" ? "input " : "as input ") + g.d.edges.index[k], self.nodeLink(other, nr ? " (out" + nr + ")" : ""));
    });
    d.appendChild(t);
  };

  View.prototype.showGroup = function (o) {
    var d = this.details;
    d.textContent = "";
    d.removeAttribute("data-node");
    var g = this.g;
    if (o >= g.n + 2 * g.nc) {
      d.appendChild(el("div", "gv-hint", "Drawing more of the graph\u2026"));
      return;
    }
    var t = this.groupTitle(o);
    d.appendChild(el("h2", "gv-node-title", t.title + (t.repeat > 1 ? " \u00d7" + t.repeat : "")));
    d.appendChild(el("div", "gv-hint", (t.type || "module") + (t.repeat > 1 ? ": " + t.repeat + " identical blocks, drawn one by one now" : ": expanded")));
  };

  View.prototype.showDefault = function () {
    var d = this.details;
    d.textContent = "";
    d.removeAttribute("data-node");
    d.appendChild(el("div", "gv-hint",
      "Click a module to expand it, its dashed frame's title to collapse it, a node for its " +
      "details. Drag to pan, wheel to zoom, / to search" + (this.g.d.steps.node.length ? ", \u2190/\u2192 to step through backward." : ".")));
  };

  View.prototype.ring = function (id) {
    if (this.ringEl) this.ringEl.remove();
    this.ringEl = null;
    var e = id === null ? null : this.drawnOf(id);
    if (!e || !this.overlay) return;
    var b = this.boxOf(e);
    this.ringEl = svgEl("rect", { "class": "gv-ring", x: b.x - 4, y: b.y - 4, width: b.w + 8, height: b.h + 8, rx: 4 });
    this.overlay.appendChild(this.ringEl);
  };

  View.prototype.select = function (id, focus) {
    if (id === null || id < 0 || id >= this.g.n) {
      this.selected = null;
      this.ring(null);
      this.showDefault();
      return;
    }
    this.selected = id;
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

  // -- backward steps -----------------------------------------------------------------------
  View.prototype.reached = function (id) {
    var g = this.g;
    if (this.step === null) return true;
    if (this.step === 0) return false;
    var limit = g.d.steps.order[this.step - 1];
    return g.d.order[id] >= 0 && g.d.order[id] <= limit;
  };

  View.prototype.setStep = function (k) {
    var total = this.g.d.steps.node.length;
    if (!total) return;
    this.step = Math.max(0, Math.min(total, k));
    this.applyStep();
    if (this.step > 0) {
      var id = this.g.d.steps.node[this.step - 1];
      this.selected = id;
      this.render(id);
      this.ring(id);
    } else {
      this.select(null, false);
    }
  };

  View.prototype.applyStep = function () {
    // At step K the drawn nodes the backward pass has not reached show no gradient yet.
    var self = this;
    var g = this.g;
    if (!this.svg || this.step === null) return;
    var total = g.d.steps.node.length;
    if (this.stepLabel) {
      this.stepLabel.textContent = this.step === 0 ? "step 0 / " + total + ": forward values"
        : "step " + this.step + " / " + total;
    }
    this.root.setAttribute("data-gv-step", String(this.step));
    this.current.items.forEach(function (o) {
      var e = self.drawnEls[o];
      if (!e) return;
      var id = o < g.n ? o : self.groupInfo(o).output;
      var on = id >= 0 && self.reached(id);
      var texts = e.querySelectorAll("text");
      for (var k = 0; k + 1 < texts.length; k++) {
        var key = texts[k].textContent;
        if (key !== "grad" && !/ grad$/.test(key)) continue;
        var cell = texts[k + 1];
        if (!cell.hasAttribute("data-gv-full")) cell.setAttribute("data-gv-full", cell.textContent);
        cell.textContent = on ? cell.getAttribute("data-gv-full") : MISSING;
      }
      e.classList.toggle("gv-unreached", !on);
    });
  };

  // -- colouring ----------------------------------------------------------------------------
  View.prototype.applyColour = function () {
    if (!this.svg) return;
    var self = this;
    var g = this.g;
    var mode = this.colour ? this.colour.value : "kind";
    var col = mode === "value" ? g.d.vmag : g.d.gmag;
    var nums = col.filter(function (m) { return typeof m === "number"; });
    var lo = nums.length ? Math.min.apply(null, nums) : 0;
    var hi = nums.length ? Math.max.apply(null, nums) : 0;
    Object.keys(this.drawnEls).forEach(function (key) {
      var o = Number(key);
      var e = self.drawnEls[o];
      var fill = e.querySelector("polygon:not([fill='none']), path:not([fill='none'])");
      if (!fill) return;
      var id = o < g.n ? o : self.groupInfo(o).output;
      var colour = mode === "kind" || id < 0 ? e.getAttribute("data-fill") : self.colourFor(col[id], lo, hi);
      fill.setAttribute("fill", colour);
    });
    this.root.setAttribute("data-colour", mode);
    this.drawLegend(mode, lo, hi);
  };

  View.prototype.colourFor = function (m, lo, hi) {
    if (m === "bad") return BAD;
    if (m === "zero") return ZERO;
    if (typeof m !== "number") return NONE;
    return ramp(hi > lo ? (m - lo) / (hi - lo) : 0.5);
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
    box.appendChild(el("span", "", "rms " + Math.pow(10, lo).toPrecision(3)));
    var r = el("span", "gv-ramp");
    r.style.background = "linear-gradient(to right," + [0, 0.5, 1].map(ramp).join(",") + ")";
    box.appendChild(r);
    box.appendChild(el("span", "", Math.pow(10, hi).toPrecision(3)));
    swatch(ZERO, "zero");
    swatch(BAD, "nan/inf");
  };

  // -- controls -----------------------------------------------------------------------------
  View.prototype.bindControls = function () {
    var self = this;
    if (this.search) {
      this.search.addEventListener("input", function () { self.runSearch(self.search.value); });
      this.search.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter") { ev.preventDefault(); self.nextMatch(); }
        if (ev.key === "Escape") { self.search.value = ""; self.runSearch(""); }
      });
    }
    if (this.colour) this.colour.addEventListener("change", function () { self.applyColour(); });
    var on = function (cls, fn) {
      var b = self.root.querySelector(cls);
      if (b) b.addEventListener("click", fn);
    };
    on(".gv-fit", function () { self.fit(); });
    on(".gv-zoom-in", function () { self.zoom(1 / 1.4); });
    on(".gv-zoom-out", function () { self.zoom(1.4); });
    on(".gv-collapse-all", function () { self.setAll(false); self.layout(); });
    on(".gv-expand-all", function () { self.setAll(true); self.layout(); });
    on(".gv-step-first", function () { self.setStep(0); });
    on(".gv-step-prev", function () { self.setStep((self.step === null ? 1 : self.step) - 1); });
    on(".gv-step-next", function () { self.setStep((self.step === null ? -1 : self.step) + 1); });
    on(".gv-step-last", function () { self.setStep(self.g.d.steps.node.length); });
    this.root.querySelectorAll(".gv-info [data-goto]").forEach(function (b) {
      b.addEventListener("click", function () { self.reveal(Number(b.getAttribute("data-goto"))); });
    });
    if (this.root.classList.contains("gv-page")) {
      document.addEventListener("keydown", function (ev) {
        if (ev.target === self.search) return;
        if (ev.key === "/") { ev.preventDefault(); self.search.focus(); }
        if (ev.key === "f") self.fit();
        if (ev.key === "Escape") self.select(null, false);
        if (ev.key === "ArrowRight") { ev.preventDefault(); self.setStep((self.step === null ? -1 : self.step) + 1); }
        if (ev.key === "ArrowLeft") { ev.preventDefault(); self.setStep((self.step === null ? 1 : self.step) - 1); }
      });
    }
  };

  View.prototype.applyHashState = function (opts) {
    // What the fragment asks to be drawn: #expand=PATH[,PATH] or all, #collapse=PATH[,...],
    // and the path to #node= / the first #search= match. Laid out once afterwards.
    var self = this;
    var list = function (text) { return String(text).split(",").map(function (p) { return p.trim(); }).filter(Boolean); };
    if (opts.expand === "all") this.setAll(true);
    else if (opts.expand) list(opts.expand).forEach(function (p) { self.callsAt(p).forEach(function (c) { if (self.g.callPath(c) === p) self.expandCall(c); }); });
    if (opts.collapse === "all") this.setAll(false);
    else if (opts.collapse) list(opts.collapse).forEach(function (p) {
      self.callsAt(p).forEach(function (c) { self.state.expanded[c] = 0; });
    });
    if (opts.search !== undefined && this.search) {
      this.search.value = opts.search;
      this.runSearch(opts.search);
      if (this.matches.length) { this.matchAt = 0; this.expandFor(this.matches[0]); }
    }
    var node = opts.node !== undefined ? Number(opts.node) : NaN;
    if (node >= 0 && node < this.g.n) this.expandFor(node);
  };

  View.prototype.applyHashView = function (opts) {
    if (opts.colour && this.colour) {
      this.colour.value = opts.colour;
      this.applyColour();
    }
    if (this.matches.length && this.matchAt === 0) {
      this.count.textContent = "1 of " + fmtCount(this.matches.length);
      this.select(this.matches[0], true);
    }
    var node = opts.node !== undefined ? Number(opts.node) : NaN;
    if (node >= 0 && node < this.g.n) this.select(node, true);
    if (opts.step !== undefined && /^\d+$/.test(opts.step)) this.setStep(Number(opts.step));
    if (this.selected === null) this.showDefault();
  };

  function init(root) {
    if (root.getAttribute("data-gv-ready")) return;
    var data = root.querySelector("script.gv-data");
    if (!data) return;
    try {
      new View(root, JSON.parse(data.textContent)).start().catch(function (err) {
        root.setAttribute("data-gv-error", String(err && err.message || err));
      });
    } catch (err) {
      root.setAttribute("data-gv-error", String(err && err.message || err));
      throw err;
    }
  }

  document.querySelectorAll(".gradviz").forEach(init);
})();
