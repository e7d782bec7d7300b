// modelgit diff page: clicking a renamed module in one tree shows its partner in the
// other (opened, scrolled to and flashed); two buttons open or fold every module.
(function () {
  "use strict";
  var panel = document.getElementById("structure");
  if (!panel) { return; }
  function find(side, path) {
    var all = panel.querySelectorAll(side + " .tnode");
    for (var i = 0; i < all.length; i++) {
      if (all[i].getAttribute("data-path") === path) { return all[i]; }
    }
    return null;
  }
  panel.addEventListener("click", function (ev) {
    var tag = ev.target.closest(".tpartner");
    if (!tag) { return; }
    var node = tag.closest(".tnode");
    if (!node) { return; }
    var other = node.closest(".tree-left") ? ".tree-right" : ".tree-left";
    var partner = find(other, node.getAttribute("data-partner"));
    if (!partner) { return; }
    ev.preventDefault();
    for (var p = partner; p && p !== panel; p = p.parentElement) {
      if (p.tagName === "DETAILS") { p.open = true; }
    }
    partner.scrollIntoView({ block: "center" });
    partner.classList.add("flash");
    setTimeout(function () { partner.classList.remove("flash"); }, 1500);
  });
  var trees = panel.querySelector(".trees");
  if (!trees || !panel.querySelector(".tnode")) { return; }
  function button(label, open) {
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.addEventListener("click", function () {
      Array.prototype.forEach.call(panel.querySelectorAll(".tnode"), function (n) {
        var d = n.querySelector("details");
        if (d) { d.open = open || !n.classList.contains("same"); }
      });
    });
    return b;
  }
  var bar = document.createElement("p");
  bar.appendChild(button("open all", true));
  bar.appendChild(document.createTextNode(" "));
  bar.appendChild(button("fold the unchanged", false));
  panel.insertBefore(bar, trees);
}());
