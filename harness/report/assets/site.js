/* visionbench site: sort, filter, search, column choice and permalinks for every table.data on a page.
   Plain JavaScript, no framework, nothing loaded from the network. */
(function () {
  "use strict";

  function cellKey(row, col) {
    var cell = row.querySelector('td[data-col="' + col + '"]');
    if (!cell) { return null; }
    var raw = cell.getAttribute("data-value");
    if (raw === null || raw === "") { return null; }
    var num = Number(raw);
    return isNaN(num) ? raw.toLowerCase() : num;
  }

  function sortBy(table, th) {
    var col = th.getAttribute("data-col");
    var asc = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellKey(a, col), y = cellKey(b, col);
      if (x === null || y === null) { return x === y ? 0 : x === null ? 1 : -1; }  /* missing last */
      var cmp = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return asc ? cmp : -cmp;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }

  function setColumn(table, col, shown) {
    table.querySelectorAll('[data-col="' + col + '"]').forEach(function (cell) { cell.hidden = !shown; });
  }

  function filterState(form) {
    var state = {};
    form.querySelectorAll("[data-filter]").forEach(function (input) {
      var key = input.getAttribute("data-filter");
      state[key] = input.type === "checkbox" ? input.checked : input.value.trim().toLowerCase();
    });
    return state;
  }

  function rowMatches(row, state) {
    for (var key in state) {
      var want = state[key];
      if (!want) { continue; }
      if (key === "search") {
        var text = "";
        row.querySelectorAll("td.text").forEach(function (td) { text += " " + td.textContent.toLowerCase(); });
        if (text.indexOf(want) < 0) { return false; }
      } else if (key === "complete") {
        if (row.getAttribute("data-complete") !== "1") { return false; }
      } else if (row.hasAttribute("data-" + key) && row.getAttribute("data-" + key).toLowerCase() !== want) {
        return false;
      }
    }
    return true;
  }

  function applyFilters(form) {
    var state = filterState(form);
    var shown = 0, total = 0;
    document.querySelectorAll("table.data").forEach(function (table) {
      var visible = 0;
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        var ok = rowMatches(row, state);
        row.hidden = !ok;
        visible += ok ? 1 : 0;
        total += 1;
      });
      shown += visible;
      var section = table.closest(".table-section");
      if (section) {
        var off = (state.task && section.hasAttribute("data-task") && section.getAttribute("data-task").toLowerCase() !== state.task) ||
                  (state.dataset && section.hasAttribute("data-dataset") && section.getAttribute("data-dataset").toLowerCase() !== state.dataset);
        section.hidden = off || (visible === 0 && table.tBodies[0].rows.length > 0);
      }
    });
    var count = form.querySelector("[data-count]");
    if (count) { count.textContent = shown + " of " + total + " rows shown"; }
  }

  function resetFilters(form) {
    form.querySelectorAll("[data-filter]").forEach(function (input) {
      if (input.type === "checkbox") { input.checked = false; } else { input.value = ""; }
    });
    applyFilters(form);
  }

  function reveal(form) {
    /* a permalink to a row or table: make sure a filter does not hide it, then scroll to it */
    var id = decodeURIComponent(location.hash.slice(1));
    if (!id) { return; }
    var target = document.getElementById(id);
    if (!target) { return; }
    if (form && (target.hidden || (target.closest("[hidden]")))) { resetFilters(form); }
    document.querySelectorAll(".targeted").forEach(function (el) { el.classList.remove("targeted"); });
    target.classList.add("targeted");
    target.scrollIntoView({block: "center"});  /* not under the sticky filter bar */
  }

  document.querySelectorAll("table.data").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (th) {
      th.tabIndex = 0;
      th.addEventListener("click", function () { sortBy(table, th); });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sortBy(table, th); } });
    });
    var tools = table.closest(".scroll").previousElementSibling;
    if (tools && tools.classList.contains("tools")) {
      tools.querySelectorAll("input[data-col]").forEach(function (box) {
        box.addEventListener("change", function () { setColumn(table, box.getAttribute("data-col"), box.checked); });
      });
    }
  });

  var form = document.querySelector("form[data-filters]");
  if (form) {
    form.addEventListener("input", function () { applyFilters(form); });
    form.addEventListener("change", function () { applyFilters(form); });
    applyFilters(form);
  }
  window.addEventListener("hashchange", function () { reveal(form); });
  reveal(form);
})();
