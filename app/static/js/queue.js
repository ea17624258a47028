// Keyboard shortcuts for the match review queue (progressive enhancement: every action
// is a link or a form that works without this file). j/k: next/previous, c: confirm,
// r: focus the rejection reason, d: focus the deferral note.
(function () {
  "use strict";
  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }
  function follow(selector) {
    var link = document.querySelector(selector);
    if (link) { window.location.assign(link.href); }
  }
  var rows = Array.prototype.slice.call(document.querySelectorAll("[data-queue-item]"));
  var current = -1;
  function select(index) {
    if (!rows.length) { return; }
    current = Math.max(0, Math.min(rows.length - 1, index));
    rows.forEach(function (row, i) { row.classList.toggle("is-current", i === current); });
    var link = rows[current].querySelector("[data-queue-link]");
    if (link) { link.focus(); }
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    var key = event.key;
    if (key === "j") {
      if (rows.length) { select(current + 1); } else { follow("[data-queue-next]"); }
    } else if (key === "k") {
      if (rows.length) { select(current - 1); } else { follow("[data-queue-prev]"); }
    } else if (key === "c") {
      var button = document.querySelector("#confirm-form button[type=submit]");
      if (button) { event.preventDefault(); button.click(); }
    } else if (key === "r") {
      var reason = document.getElementById("reject-reason");
      if (reason) { event.preventDefault(); reason.focus(); }
    } else if (key === "d") {
      var note = document.getElementById("defer-note");
      if (note) { event.preventDefault(); note.focus(); }
    } else {
      return;
    }
  });
})();
