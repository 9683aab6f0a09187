// tir-harness report.html: the problem table and the trajectories, from the page's JSON block.
// Inlined by tir_harness/analysis/html.py.  Every text from the run is model output or data, so it is only
// ever set as textContent (never innerHTML); mathematics goes through KaTeX with trust off.
(function () {
  "use strict";
  var PAGE = 100;
  var data = JSON.parse(document.getElementById("tir-data").textContent);
  var rows = data.rows, details = data.details, questions = data.questions, base = data.baseline || {};
  // The columns as html.py derived them from the record's fields (tir_harness/records/fields.py): each has a
  // name, its position in a row, a heading (null: data for filters, search and the trajectory view only), a
  // width, a cell kind (CELLS below), a filter's first option, how its options read, search and when to show.
  var columns = data.columns.map(function (name, i) { return Object.assign({ name: name, index: i }, data.specs[i]); });
  var C = {};
  columns.forEach(function (c) { C[c.name] = c.index; });
  function get(r, name) { return C[name] === undefined ? null : r[C[name]]; }
  var hasFlips = rows.some(function (r) { return get(r, "flip"); });
  var hasSamples = rows.some(function (r) { return get(r, "sample") > 0; });
  var shown = [], page = 0, openIndex = -1, lowered = null, searched = {}, filters = [], table = [];
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // ------------------------------------------------------------------------------------------ mathematics

  var KATEX = { throwOnError: false, trust: false, strict: "ignore", maxExpand: 500 };
  var DELIMITERS = [
    { left: "$$", right: "$$", display: true },
    { left: "\\[", right: "\\]", display: true },
    { left: "\\(", right: "\\)", display: false },
    { left: "$", right: "$", display: false }
  ];

  // Text with $...$, \(...\), \[...\] typeset; the rest stays text.  A formula KaTeX cannot read is shown
  // in red by KaTeX itself (throwOnError off), so a model's broken LaTeX never becomes a console error.
  function prose(text, cls) {
    var node = el("div", cls || "prose", text);
    if (window.renderMathInElement && /[$\\]/.test(text)) {
      try {
        window.renderMathInElement(node, Object.assign({ delimiters: DELIMITERS, errorCallback: function () {} }, KATEX));
        boxes(node);
      } catch (e) { node.textContent = text; }
    }
    return node;
  }

  // Models often write their answer as a bare \boxed{...} outside any $...$: typeset those too.
  function boxes(node) {
    var walker = document.createTreeWalker(node, NodeFilter.SHOW_TEXT), found = [], t;
    while ((t = walker.nextNode())) {
      if (t.nodeValue.indexOf("\\boxed{") >= 0 && !(t.parentNode.closest && t.parentNode.closest(".katex"))) found.push(t);
    }
    found.forEach(function (textNode) {
      var text = textNode.nodeValue, out = document.createDocumentFragment(), last = 0, at;
      while ((at = text.indexOf("\\boxed{", last)) >= 0) {
        var depth = 0, end = -1;
        for (var k = at + 6; k < text.length; k++) {
          if (text[k] === "{") depth++;
          else if (text[k] === "}" && --depth === 0) { end = k + 1; break; }
        }
        if (end < 0) break;
        out.appendChild(document.createTextNode(text.slice(last, at)));
        var span = el("span");
        window.katex.render(text.slice(at, end), span, KATEX);
        out.appendChild(span);
        last = end;
      }
      if (last === 0) return;
      out.appendChild(document.createTextNode(text.slice(last)));
      textNode.parentNode.replaceChild(out, textNode);
    });
  }

  function formula(text) {
    var node = el("span");
    if (text === null || text === undefined) { node.textContent = "no answer"; node.className = "no"; return node; }
    try { window.katex.render(String(text), node, KATEX); } catch (e) { node.textContent = String(text); }
    return node;
  }

  // ----------------------------------------------------------------------------------- Python highlighting

  var KEYWORDS = "False None True and as assert async await break class continue def del elif else except " +
    "finally for from global if import in is lambda nonlocal not or pass raise return try while with yield";
  var BUILTINS = "abs all any bin bool dict divmod enumerate filter float int isinstance len list map max min " +
    "next pow print range reversed round set sorted str sum tuple zip";
  var TOKEN = new RegExp(
    "(#[^\\n]*)" +
    "|([rRbBfFuU]{0,2}(?:\"\"\"[\\s\\S]*?(?:\"\"\"|$)|'''[\\s\\S]*?(?:'''|$)|\"(?:\\\\.|[^\"\\\\\\n])*\"?|'(?:\\\\.|[^'\\\\\\n])*'?))" +
    "|\\b(\\d[\\d_]*(?:\\.\\d*)?(?:[eE][+-]?\\d+)?j?)\\b" +
    "|\\b(" + KEYWORDS.split(" ").join("|") + ")\\b" +
    "|\\b(" + BUILTINS.split(" ").join("|") + ")(?=\\()", "g");
  var TOKEN_CLASS = [null, "tok-com", "tok-str", "tok-num", "tok-kw", "tok-bi"];

  function code(text, python) {
    var pre = el("pre", "code");
    if (!python) { pre.textContent = text; return pre; }
    var last = 0, match;
    TOKEN.lastIndex = 0;
    while ((match = TOKEN.exec(text)) !== null) {
      if (match[0] === "") { TOKEN.lastIndex++; continue; }
      if (match.index > last) pre.appendChild(document.createTextNode(text.slice(last, match.index)));
      var kind = 1;
      while (match[kind] === undefined) kind++;
      pre.appendChild(el("span", TOKEN_CLASS[kind], match[0]));
      last = match.index + match[0].length;
    }
    if (last < text.length) pre.appendChild(document.createTextNode(text.slice(last)));
    return pre;
  }

  // A model turn: prose with mathematics, and fenced blocks (```python highlighted; an unclosed fence runs
  // to the end of the turn, which is how a turn that stopped at the tool call ends).
  function turnBody(text) {
    var body = el("div", "body"), fence = /```([^\n`]*)\n([\s\S]*?)(?:```|$)/g, last = 0, match;
    while ((match = fence.exec(text)) !== null) {
      if (match[0] === "") { fence.lastIndex++; continue; }
      if (match.index > last) body.appendChild(prose(text.slice(last, match.index)));
      var lang = match[1].trim().toLowerCase();
      body.appendChild(code(match[2].replace(/\n$/, ""), lang === "python" || lang === "py"));
      last = match.index + match[0].length;
    }
    if (last < text.length) body.appendChild(prose(text.slice(last)));
    return body;
  }

  // ---------------------------------------------------------------------------------------- trajectories

  function message(kind, who, body) {
    var box = el("div", "msg " + kind);
    box.appendChild(typeof who === "string" ? el("div", "who", who) : who);
    box.appendChild(body);
    return box;
  }

  function status(name) {
    return el("span", "status " + String(name).replace(/[^a-z_]/g, ""), name);
  }

  function side(title, d, prediction, correct, gold) {
    var box = el("div", "side");
    box.appendChild(el("h3", null, title));
    d.t.forEach(function (turn, k) {
      var who = el("div", "who", "model, turn " + (k + 1) + (turn[3] ? " · finish: " + turn[3] : "") +
        (turn[4] !== null ? " · " + turn[4] + " tokens" : ""));
      box.appendChild(message("turn", who, turnBody(turn[0])));
      if (turn[1] !== null || turn[2] !== null) {
        var head = el("div", "who", "observation ");
        if (turn[2] !== null) head.appendChild(status(turn[2]));
        var obs = el("div", "body");
        obs.appendChild(el("pre", null, turn[1] === null ? "" : turn[1]));
        box.appendChild(message("observation", head, obs));
      }
    });
    if (d.e) box.appendChild(message("error", "engine error", el("pre", "body", d.e)));
    var answer = el("div", "answer");
    answer.appendChild(el("b", null, "prediction"));
    var p = el("div");
    p.appendChild(formula(prediction));
    if (prediction !== null) p.appendChild(el("code", "raw", prediction));
    answer.appendChild(p);
    answer.appendChild(el("b", null, "gold"));
    var g = el("div");
    g.appendChild(formula(gold));
    g.appendChild(el("code", "raw", gold));
    answer.appendChild(g);
    answer.appendChild(el("b", null, "verdict"));
    answer.appendChild(el("span", correct ? "yes" : "no", (correct ? "correct" : "wrong") + (d.r ? ": " + d.r : "")));
    if (d.rc !== null && d.rc !== undefined) {
      answer.appendChild(el("b", null, "reference grader"));
      answer.appendChild(el("span", d.rc ? "yes" : "no", (d.rc ? "correct" : "wrong") +
        (d.rp !== null && d.rp !== undefined ? ", its answer: " + d.rp : ", no answer")));
    }
    var cost = [];
    if (d.pt !== null) cost.push(d.pt + " prompt tokens");
    if (d.ct !== null) cost.push(d.ct + " completion tokens");
    if (d.s !== null) cost.push(d.s + " s");
    if (cost.length) { answer.appendChild(el("b", null, "cost")); answer.appendChild(el("span", null, cost.join(", "))); }
    box.appendChild(message("result", "answer", answer));
    return box;
  }

  function open(i) {
    var r = rows[i], d = details[i], panel = $("trajectory");
    if (!r) return;
    openIndex = i;
    panel.textContent = "";
    var bar = el("div", "bar");
    var level = get(r, "level");
    var where = [get(r, "dataset"), get(r, "subject"), level !== null ? "level " + level : null]
      .filter(function (x) { return x !== null; }).join(" · ");
    bar.appendChild(el("h2", null, get(r, "problem_id") + (hasSamples ? " #" + get(r, "sample") : "") +
      (where ? "  (" + where + ")" : "")));
    var close = el("button", null, "close");
    close.type = "button";
    close.addEventListener("click", function () { panel.hidden = true; openIndex = -1; mark(); history.replaceState(null, "", "#problems"); });
    bar.appendChild(close);
    panel.appendChild(bar);
    var q = el("div", "body");
    q.appendChild(prose(questions[get(r, "question")]));
    panel.appendChild(message("question", "question", q));
    var sides = el("div", "sides");
    var old = base[String(i)];
    if (old) {
      sides.classList.add("two");
      sides.appendChild(side("baseline" + (old.run ? " " + old.run : "") + ": " + (old.c ? "right" : "wrong"), old, old.p, old.c,
        get(r, "gold")));
    }
    var correct = get(r, "correct");
    sides.appendChild(side((old ? "this run: " : "") + (correct ? "right" : "wrong") + ", ended by " + get(r, "end_reason"),
      d, get(r, "prediction"), correct, get(r, "gold")));
    panel.appendChild(sides);
    panel.hidden = false;
    mark();
    if (location.hash !== "#t=" + i) history.replaceState(null, "", "#t=" + i);
    panel.scrollIntoView({ block: "start" });
  }

  // ------------------------------------------------------------------------------------------------ table

  // How each kind of cell is shown: its text (always as textContent), its class, and for a filter the options
  // it offers (by default the column's values) and how a row matches the one picked (by default: equal).
  function plain(v) { return v === null || v === undefined ? "" : String(v); }
  var CELLS = {
    text: { text: plain },
    number: { text: plain },
    answer: { text: function (v) { return v === null ? "(none)" : String(v); }, cls: function () { return "mono"; } },
    verdict: {
      text: function (v) { return v === null ? "" : v ? "right" : "wrong"; },
      cls: function (v) { return v === null ? "" : v ? "yes" : "no"; },
      options: [["1", "right"], ["0", "wrong"]]
    },
    list: {
      text: function (v) { return v.join(", "); },
      values: function (v) { return v.length ? v : [null]; },
      match: function (v, wanted) { return v.indexOf(wanted) >= 0; }
    },
    flip: {
      text: function (v) { return v === "lost" ? "newly wrong" : v === "gained" ? "newly right" : ""; },
      cls: function (v) { return v ? "flip-" + v : ""; },
      options: [["flipped", "flipped"], ["lost", "newly wrong"], ["gained", "newly right"]],
      match: function (v, wanted) { return wanted === "flipped" ? !!v : v === wanted; }
    }
  };

  function hasValue(v) { return v !== null && v !== "" && !(Array.isArray(v) && !v.length); }

  // Whether the table shows a column: always, when some row has a value, or when the rows' values differ.
  function visible(c) {
    if (c.heading === null) return false;
    if (c.show === "some") return rows.some(function (r) { return hasValue(r[c.index]); });
    if (c.show === "varies") {
      var first = rows.length ? JSON.stringify(rows[0][c.index]) : "";
      return rows.some(function (r) { return r[c.index] !== rows[0][c.index] && JSON.stringify(r[c.index]) !== first; });
    }
    return true;
  }

  // A filter select for each column that has one, unless all rows have one value (nothing to narrow).
  function addFilter(c) {
    var kind = CELLS[c.cell], seen = new Set(), index = c.index, i, v;
    for (i = 0; i < rows.length; i++) {
      v = rows[i][index];
      if (kind.values) kind.values(v).forEach(function (x) { seen.add(x === null ? null : String(x)); });
      else seen.add(v === null ? null : String(v));
    }
    if (seen.size < 2) return;
    var values = Array.from(seen).filter(function (v) { return v !== null; })
      .sort(function (a, b) { return a.localeCompare(b, undefined, { numeric: true }); });
    var select = el("select");
    select.id = "f-" + c.name;
    select.setAttribute("aria-label", c.heading || c.filter);
    select.appendChild(new Option(c.filter, ""));
    (kind.options || values.map(function (v) { return [v, c.option.split("{}").join(v)]; }))
      .forEach(function (o) { select.appendChild(new Option(o[1], o[0])); });
    select.addEventListener("change", apply);
    $("filters").insertBefore(select, $("count"));
    filters.push({ column: c, select: select, match: kind.match || function (v, wanted) { return plain(v) === wanted; } });
  }

  function apply() {
    var search = $("search").value.trim().toLowerCase();
    var active = filters.filter(function (f) { return f.select.value !== ""; });
    var at = active.map(function (f) { return f.column.index; }), wanted = active.map(function (f) { return f.select.value; });
    var searchable = columns.filter(function (c) { return c.search; });
    if (search) {
      if (lowered === null) lowered = questions.map(function (q) { return q.toLowerCase(); });
      searchable.forEach(function (c) {
        if (!searched[c.name]) searched[c.name] = rows.map(function (r) { return plain(r[c.index]).toLowerCase(); });
      });
    }
    var picked = [], q = C.question, texts = searchable.map(function (c) { return searched[c.name]; });
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i], keep = true, k;
      for (k = 0; k < active.length && keep; k++) keep = active[k].match(r[at[k]], wanted[k]);
      if (keep && search) {
        keep = lowered[r[q]].indexOf(search) >= 0;
        for (k = 0; k < texts.length && !keep; k++) keep = texts[k][i].indexOf(search) >= 0;
      }
      if (keep) picked.push(i);
    }
    if (hasFlips) {  // the flipped problems first: newly wrong, then newly right, each in id order
      var rank = { lost: 0, gained: 1 };
      var flipRank = function (i) { var f = get(rows[i], "flip"); return f in rank ? rank[f] : 2; };
      picked.sort(function (a, b) { return flipRank(a) - flipRank(b) || a - b; });
    }
    shown = picked;
    page = 0;
    render();
  }

  function mark() {
    Array.prototype.forEach.call($("rows").tBodies[0].rows, function (tr) {
      tr.classList.toggle("open", Number(tr.dataset.index) === openIndex);
    });
  }

  function render() {
    var body = $("rows").tBodies[0], pages = Math.max(1, Math.ceil(shown.length / PAGE));
    page = Math.min(page, pages - 1);
    var fragment = document.createDocumentFragment();
    shown.slice(page * PAGE, (page + 1) * PAGE).forEach(function (i) {
      var r = rows[i], tr = document.createElement("tr");
      tr.dataset.index = i;
      tr.tabIndex = 0;
      table.forEach(function (c) {
        var kind = CELLS[c.cell], v = r[c.index], text = kind.text(v), td = el("td", kind.cls ? kind.cls(v) : "", text);
        td.title = text;
        tr.appendChild(td);
      });
      fragment.appendChild(tr);
    });
    body.textContent = "";
    body.appendChild(fragment);
    mark();
    $("count").textContent = shown.length + " of " + rows.length + " trajectories";
    $("page").textContent = "page " + (page + 1) + " of " + pages;
    $("prev").disabled = page === 0;
    $("next").disabled = page >= pages - 1;
  }

  function setup() {
    var head = $("rows").tHead.rows[0];
    table = columns.filter(visible);
    table.forEach(function (c) { var th = el("th", null, c.heading); th.style.width = c.width; head.appendChild(th); });
    columns.forEach(function (c) { if (c.filter !== null) addFilter(c); });
    $("search").addEventListener("input", apply);
    $("prev").addEventListener("click", function () { page--; render(); });
    $("next").addEventListener("click", function () { page++; render(); });
    var body = $("rows").tBodies[0];
    body.addEventListener("click", function (event) {
      var tr = event.target.closest("tr");
      if (tr) open(Number(tr.dataset.index));
    });
    body.addEventListener("keydown", function (event) {
      var tr = event.target.closest("tr");
      if (tr && (event.key === "Enter" || event.key === " ")) { event.preventDefault(); open(Number(tr.dataset.index)); }
    });
    Array.prototype.forEach.call(document.querySelectorAll("[data-flip]"), function (a) {
      a.addEventListener("click", function () { if ($("f-flip")) { $("f-flip").value = a.dataset.flip; apply(); } });
    });
    apply();
    var m = /^#t=(\d+)$/.exec(location.hash);
    if (m) open(Number(m[1]));
  }

  setup();
  // For tests and the benchmark: the table is filled and answers clicks from here on.
  window.tirReadyMs = performance.now();
  document.documentElement.dataset.ready = "1";
})();
