// Live updates: the page's server-sent event stream (body[data-live]) announces changes; parts
// marked with hx-trigger="tasker:changed from:body" re-fetch themselves. A part being worked on
// (a selected checkbox, an open resolve form, an event form typed into, focus in a field) is left
// alone until then. A part swaps its children (hx-select="#id > *", innerHTML), never itself: a
// change announced while its re-fetch is in flight is queued on the part (hx-sync queue last), and
// a part that replaced itself would drop that queued request with the old element.
(function () {
  "use strict";
  var url = document.body.dataset.live;
  if (!url || !window.EventSource) { return; }
  var source = null;
  function connect() {
    source = new EventSource(url);
    source.addEventListener("changed", function () {
      document.body.dispatchEvent(new Event("tasker:changed"));
    });
    source.onerror = function () {
      // a refused reconnection (a 503 while the database is away) closes the stream for good:
      // open a new one a little later (it announces what changed meanwhile)
      if (source.readyState === EventSource.CLOSED) { setTimeout(connect, 5000); }
    };
  }
  connect();
  window.addEventListener("pagehide", function () { source.close(); });
  document.body.addEventListener("input", function (e) {  // an event form someone is filling in
    var form = e.target.closest && e.target.closest("details.event-form form");
    if (form) { form.classList.add("typed"); }
  });
  document.body.addEventListener("htmx:beforeRequest", function (e) {
    var part = e.detail.elt, active = document.activeElement;
    var busy = part.querySelector("input[type=checkbox]:checked, details.resolve[open], form.typed") ||
      (active && part.contains(active) && active.matches("input, textarea, select"));
    if (busy) { e.preventDefault(); }
  });
})();
