// modelgit search page: filters the index of data/search.js (window.MODELGIT_SEARCH) by
// the words of ?q=..., in the browser, so the static site searches as the server does.
// Every word must match: a bare word anywhere (model, tag, metadata, message); tag:T,
// name:N, meta:M and KEY=VALUE in one field only. Results are built with textContent.
(function () {
  "use strict";
  var items = (window.MODELGIT_SEARCH || { items: [] }).items || [];
  var input = document.getElementById("query");
  var list = document.getElementById("results");
  var count = document.getElementById("result-count");
  if (!input || !list) { return; }

  function parse(q) {
    return q.toLowerCase().split(/\s+/).filter(Boolean).map(function (w) {
      var m = /^(tag|name|meta):(.*)$/.exec(w);
      if (m) { return { field: m[1], value: m[2] }; }
      var eq = w.indexOf("=");
      if (eq > 0) { return { field: "kv", key: w.slice(0, eq), value: w.slice(eq + 1) }; }
      return { field: "any", value: w };
    });
  }
  function lower(s) { return String(s).toLowerCase(); }
  // why `item` matches term `t` ("" when it does not; "name" when only by its name)
  function why(item, t) {
    var i, v = t.value;
    if ((t.field === "name" || t.field === "any") && lower(item.ref).indexOf(v) >= 0) { return "name"; }
    if (t.field === "tag" || t.field === "any") {
      for (i = 0; i < item.tags.length; i++) {
        if (lower(item.tags[i]).indexOf(v) >= 0) { return "tag " + item.tags[i]; }
      }
    }
    if (t.field === "meta" || t.field === "any" || t.field === "kv") {
      for (i = 0; i < item.meta.length; i++) {
        var kv = item.meta[i], low = lower(kv), eq = low.indexOf("=");
        if (t.field === "kv") {
          if (low.slice(0, eq).indexOf(t.key) >= 0 && low.slice(eq + 1).indexOf(v) >= 0) { return kv; }
        } else if (low.indexOf(v) >= 0) { return kv; }
      }
    }
    if (t.field === "any" && item.message && lower(item.message).indexOf(v) >= 0) { return "message"; }
    if (t.field === "any" && lower(item.relation).indexOf(v) >= 0) { return "derived by " + item.relation; }
    return "";
  }
  function run(q) {
    var terms = parse(q);
    while (list.firstChild) { list.removeChild(list.firstChild); }
    if (!terms.length) { count.textContent = items.length + " versions indexed"; return; }
    var shown = 0;
    items.forEach(function (item) {
      var reasons = [];
      for (var i = 0; i < terms.length; i++) {
        var r = why(item, terms[i]);
        if (!r) { return; }
        if (reasons.indexOf(r) < 0) { reasons.push(r); }
      }
      var byName = reasons.every(function (r) { return r === "name" || r.indexOf("derived by") === 0; });
      if (byName && !item.latest) { return; }  // one result per model found by its name
      var li = document.createElement("li"), a = document.createElement("a");
      a.href = item.href;
      a.textContent = item.ref;
      li.appendChild(a);
      var span = document.createElement("span");
      span.className = "why";
      span.textContent = reasons.filter(function (r) { return r !== "name"; }).join(" \u00b7 ");
      li.appendChild(span);
      if (item.message) {
        var msg = document.createElement("span");
        msg.className = "msg";
        msg.textContent = item.message;
        li.appendChild(msg);
      }
      list.appendChild(li);
      shown += 1;
    });
    count.textContent = shown + (shown === 1 ? " result" : " results");
  }
  var params = new URLSearchParams(window.location.search);
  input.value = params.get("q") || "";
  run(input.value);
  var timer = null;
  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      run(input.value);
      try {
        var url = new URL(window.location.href);
        url.searchParams.set("q", input.value);
        window.history.replaceState(null, "", url.toString());
      } catch (e) { /* file:// pages may refuse: the results are shown all the same */ }
    }, 120);
  });
}());
