// Live progress of a run: the server sends the page's live part, rendered
// as the page renders it, in "update" events; "end" says the run is over.
// Without this script the page reloads itself while the run is active.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !live.dataset.events || !window.EventSource) { return; }
  var updates = 0;
  var es = new EventSource(live.dataset.events);
  es.addEventListener("update", function (e) {
    live.innerHTML = e.data;
    updates += 1;
    live.dataset.updates = String(updates);
  });
  es.addEventListener("end", function () {
    es.close();
    live.dataset.ended = "1";
  });
})();
