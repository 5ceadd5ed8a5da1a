// driftkeeper review: label the grid from the keyboard. No inline script (the page's CSP forbids it);
// every text from the server is set with textContent, never parsed as HTML.
(function () {
  "use strict";
  var grid = document.getElementById("grid");
  var statusEl = document.getElementById("status");
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  var keys = {};
  var chain = Promise.resolve(); // decisions and undos reach the server in the order they were made
  var pending = 0;

  function say(text, isError) {
    statusEl.textContent = text;
    statusEl.classList.toggle("error", !!isError);
  }

  function setPending(delta) {
    pending += delta;
    if (grid) grid.setAttribute("data-pending", String(pending));
  }

  function post(url, body) {
    setPending(1);
    var request = chain.then(function () {
      return fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/json", "x-csrftoken": csrf },
        body: JSON.stringify(body || {})
      }).then(function (r) {
        return r.json().then(function (data) {
          if (!r.ok) throw new Error(data.error || data.detail || r.statusText);
          return data;
        });
      });
    });
    chain = request.catch(function () {}).then(function () { setPending(-1); });
    return request;
  }

  function showProgress(p) {
    if (!p) return;
    document.getElementById("p-done").textContent = String(p.done);
    document.getElementById("p-skipped").textContent = String(p.skipped);
    document.getElementById("p-left").textContent = String(p.left);
    document.getElementById("p-rate").textContent = p.per_minute == null ? "—" : Number(p.per_minute).toPrecision(3);
    document.getElementById("p-agreement").textContent =
      p.agreement == null ? "—" : (100 * p.agreement).toFixed(1) + "%";
    var bar = document.getElementById("p-bar");
    bar.max = p.done + p.skipped + p.left;
    bar.value = p.done + p.skipped;
  }

  document.querySelectorAll("#legend .choice").forEach(function (button) {
    keys[button.getAttribute("data-key")] = button.getAttribute("data-label");
    button.addEventListener("click", function () { choose(button.getAttribute("data-label")); });
  });

  if (!grid) return;
  grid.setAttribute("data-pending", "0");
  var cards = Array.prototype.slice.call(grid.querySelectorAll(".card"));
  var segmentation = grid.getAttribute("data-segmentation") === "yes";
  var cursor = 0;
  var countEl = document.getElementById("selected-count");

  function box(card) { return card.querySelector('input[type="checkbox"]'); }
  function selected() { return cards.filter(function (c) { return box(c).checked; }); }
  function refreshSelection() {
    cards.forEach(function (c) { c.classList.toggle("selected", box(c).checked); });
    countEl.textContent = String(selected().length);
  }

  function focus(i) {
    if (!cards.length) return;
    cursor = Math.max(0, Math.min(cards.length - 1, i));
    cards.forEach(function (c, j) { c.classList.toggle("current", j === cursor); });
    cards[cursor].focus({ preventScroll: true });
    cards[cursor].scrollIntoView({ block: "nearest" });
  }

  function advance() {
    for (var j = cursor + 1; j < cards.length; j++) {
      if (!cards[j].classList.contains("done") && !cards[j].classList.contains("skipped")) { focus(j); return; }
    }
  }

  function mark(card, label) {
    card.classList.remove("done", "skipped");
    card.classList.add(label === null ? "skipped" : "done");
    card.setAttribute("data-decision", label === null ? "" : label);
    card.querySelector(".decision").textContent = label === null ? "skipped" : "→ " + label;
    box(card).checked = false;
  }

  function unmark(card) {
    card.classList.remove("done", "skipped");
    card.removeAttribute("data-decision");
    card.querySelector(".decision").textContent = "";
  }

  function decideCards(targets, label) {
    if (!targets.length) return;
    var ids = targets.map(function (c) { return c.getAttribute("data-id"); });
    targets.forEach(function (c) { mark(c, label); });
    refreshSelection();
    advance();
    post(grid.getAttribute("data-decide"), { ids: ids, label: label }).then(function (data) {
      showProgress(data.progress);
      say((label === null ? "skipped " : label + " · ") + ids.length + (ids.length === 1 ? " image" : " images"));
    }).catch(function (err) {
      targets.forEach(unmark);
      say("not stored: " + err.message, true);
    });
  }

  function choose(label) {
    var chosen = selected();
    decideCards(chosen.length ? chosen : [cards[cursor]], label);
  }

  function undoLast() {
    post(grid.getAttribute("data-undo"), {}).then(function (data) {
      showProgress(data.progress);
      if (data.undone == null) { say("nothing to undo"); return; }
      var i = cards.findIndex(function (c) { return c.getAttribute("data-id") === data.undone; });
      if (i >= 0) { unmark(cards[i]); focus(i); }
      say("undid " + data.undone);
    }).catch(function (err) { say("undo failed: " + err.message, true); });
  }

  function columns() {
    var top = cards[0].offsetTop;
    var n = cards.filter(function (c) { return c.offsetTop === top; }).length;
    return Math.max(1, n);
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var tag = e.target && e.target.tagName;
    if (tag === "INPUT" && e.target.type !== "checkbox" || tag === "SELECT" || tag === "TEXTAREA") return;
    var k = e.key;
    var handled = true;
    if (k === "ArrowRight") focus(cursor + 1);
    else if (k === "ArrowLeft") focus(cursor - 1);
    else if (k === "ArrowDown") focus(cursor + columns());
    else if (k === "ArrowUp") focus(cursor - columns());
    else if (k === "Enter") {
      var card = cards[cursor];
      decideCards([card], segmentation ? "accept" : card.getAttribute("data-predicted"));
    } else if (k === "x") decideCards([cards[cursor]], null);
    else if (k === "u") undoLast();
    else if (k === " ") { box(cards[cursor]).checked = !box(cards[cursor]).checked; refreshSelection(); }
    else if (Object.prototype.hasOwnProperty.call(keys, k)) choose(keys[k]);
    else handled = false;
    if (handled) e.preventDefault();
  });

  cards.forEach(function (card, i) {
    card.addEventListener("click", function () { focus(i); });
    box(card).addEventListener("change", refreshSelection);
  });

  document.getElementById("bulk").addEventListener("submit", function (e) {
    e.preventDefault();
    var chosen = selected();
    if (!chosen.length) { say("select images first (space, or the boxes)", true); return; }
    decideCards(chosen, document.getElementById("bulk-label").value);
  });

  focus(0);
})();
