// Live preview of the template editor: as the user types, the form is
// posted to the server's preview (the same one the Preview button asks
// for, which renders it and counts the SMS segments), and the preview,
// the SMS count and the field errors of its answer replace the page's.
// Without this script the Preview button does the same with a reload.
(function () {
  "use strict";
  var form = document.getElementById("template-form");
  if (!form || !form.dataset.preview || !window.fetch || !window.DOMParser) { return; }
  var timer = null, seq = 0, done = 0;
  function refresh() {
    var mine = ++seq;
    var body = new URLSearchParams(new FormData(form));
    fetch(form.dataset.preview, { method: "POST", body: body, credentials: "same-origin" })
      .then(function (resp) { return resp.text(); })
      .then(function (html) {
        if (mine !== seq) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        ["preview", "sms-info"].forEach(function (id) {
          var next = doc.getElementById(id), cur = document.getElementById(id);
          if (next && cur) { cur.innerHTML = next.innerHTML; }
        });
        form.querySelectorAll("[data-err]").forEach(function (cur) {
          var next = doc.querySelector('[data-err="' + cur.dataset.err + '"]');
          cur.innerHTML = next ? next.innerHTML : "";
        });
        done += 1;
        form.dataset.previews = String(done);
      })
      .catch(function () {});
  }
  form.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  });
})();
