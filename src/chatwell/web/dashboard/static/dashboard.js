// chatwell dashboard: small progressive enhancements; every page works without this file.
"use strict";
(function () {
  // Forms with data-confirm ask before they submit (delete, revoke).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // Copy buttons put their data-copy text on the clipboard.
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.copy") : null;
    if (!button || !navigator.clipboard) return;
    navigator.clipboard.writeText(button.getAttribute("data-copy") || "").then(function () {
      button.textContent = "Copied";
    });
  });

  // The Sources tab refreshes statuses and chunk counts while anything is still being ingested.
  var table = document.getElementById("sources");
  if (!table) return;
  var url = table.getAttribute("data-status-url");
  var busy = function (status) { return status === "pending" || status === "processing"; };

  function refresh() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) return;
        var pending = false;
        data.sources.forEach(function (source) {
          var row = table.querySelector('tr[data-source-id="' + source.id + '"]');
          if (!row) return;
          var status = row.querySelector('[data-field="status"]');
          status.textContent = source.status;
          status.className = "status status-" + source.status;
          row.querySelector('[data-field="chunk_count"]').textContent = String(source.chunk_count);
          row.querySelector('[data-field="error"]').textContent = source.error || "";
          if (busy(source.status)) pending = true;
        });
        if (pending) window.setTimeout(refresh, 1500);
      })
      .catch(function () { window.setTimeout(refresh, 5000); });
  }

  var anyBusy = Array.prototype.some.call(table.querySelectorAll('[data-field="status"]'), function (el) {
    return busy(el.textContent.trim());
  });
  if (anyBusy) window.setTimeout(refresh, 1000);
})();
