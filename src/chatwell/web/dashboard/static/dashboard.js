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

// The Playground tab: the question is POSTed with the CSRF header and the answer is read as
// server-sent events while it streams. Everything is written with textContent, never as HTML.
(function () {
  var form = document.getElementById("playground");
  if (!form || !window.fetch || !window.TextDecoder) return;
  var result = document.getElementById("playground-result");
  var answer = document.getElementById("playground-answer");
  var status = document.getElementById("playground-status");
  var notices = document.getElementById("playground-notices");
  var citations = document.getElementById("playground-citations");
  var passages = document.getElementById("playground-passages");
  var button = form.querySelector("button[type=submit]");

  function clear(element) { while (element.firstChild) element.removeChild(element.firstChild); }
  function cell(row, text) { var td = document.createElement("td"); td.textContent = text; row.appendChild(td); }
  function score(value) { return typeof value === "number" ? value.toFixed(3) : ""; }

  function handle(name, data) {
    if (name === "status") status.textContent = data.stage + "…";
    else if (name === "delta") answer.textContent += data.text;
    else if (name === "replace") answer.textContent = data.text;
    else if (name === "notice") notices.textContent += (notices.textContent ? " " : "") + data.message;
    else if (name === "error") { status.textContent = "failed"; notices.textContent = data.message; notices.className = "error"; }
    else if (name === "done") status.textContent = "done";
    else if (name === "usage") status.setAttribute("title", data.model + ": " + data.prompt_tokens + " + " + data.completion_tokens + " tokens");
    else if (name === "citations") {
      data.citations.forEach(function (c) {
        var li = document.createElement("li");
        li.className = "citation";
        li.textContent = "[" + c.index + "] " + c.title + (c.page ? " (page " + c.page + ")" : "") + " · score " + score(c.score);
        citations.appendChild(li);
      });
    } else if (name === "passages") {
      data.passages.forEach(function (p) {
        var row = document.createElement("tr");
        row.className = "passage";
        cell(row, score(p.score));
        cell(row, score(p.similarity));
        cell(row, p.title + (p.heading ? " · " + p.heading : ""));
        cell(row, p.text);
        passages.appendChild(row);
      });
    }
  }

  function parse(block) {
    var name = "message", lines = [];
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event: ") === 0) name = line.slice(7);
      else if (line.indexOf("data: ") === 0) lines.push(line.slice(6));
    });
    if (!lines.length) return;
    try { handle(name, JSON.parse(lines.join("\n"))); } catch (e) { /* a malformed frame is skipped */ }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    [answer, notices, citations, passages].forEach(clear);
    notices.className = "muted";
    status.textContent = "asking…";
    result.hidden = false;
    button.disabled = true;
    fetch(form.action, {
      method: "POST", credentials: "same-origin", body: new FormData(form),
      headers: { "X-CSRF-Token": form.getAttribute("data-csrf"), Accept: "text/event-stream" }
    }).then(function (response) {
      if (!response.ok || !response.body) {
        status.textContent = "failed";
        notices.className = "error";
        notices.textContent = "The request was refused (HTTP " + response.status + ").";
        return null;
      }
      var reader = response.body.getReader(), decoder = new TextDecoder(), buffer = "";
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) { if (buffer.trim()) parse(buffer); return; }
          buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n/g, "\n");
          var end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            parse(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
          return pump();
        });
      }
      return pump();
    }).catch(function () {
      status.textContent = "failed";
      notices.textContent = "The connection was lost.";
    }).then(function () { button.disabled = false; });
  });
})();

// The inbox: while the page is open and this user is online, say so again every 30 seconds
// (presence lapses after a minute without a heartbeat).
(function () {
  var form = document.getElementById("presence");
  if (!form || !window.fetch || form.getAttribute("data-online") !== "1") return;
  function beat() {
    var body = new FormData();
    body.append("online", "1");
    fetch(form.action, {
      method: "POST", credentials: "same-origin", body: body,
      headers: { "X-CSRF-Token": form.getAttribute("data-csrf"), Accept: "application/json" }
    }).catch(function () { /* the next beat tries again */ });
  }
  window.setInterval(beat, 30000);
})();

// The inbox keeps its queue live: every few seconds the page is fetched again and the table's
// rows are swapped for the fresh ones (parsed with DOMParser from the server's escaped HTML).
(function () {
  "use strict";
  var table = document.getElementById("inbox-queue");
  if (!table) return;
  var every = Number(table.getAttribute("data-live")) || 5000;
  function refresh() {
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("inbox-queue");
        var body = table.querySelector("tbody"), next = fresh && fresh.querySelector("tbody");
        if (body && next) body.replaceWith(document.importNode(next, true));
      })
      .catch(function () { /* try again at the next tick */ })
      .then(function () { window.setTimeout(refresh, every); });
  }
  window.setTimeout(refresh, every);
})();

// Sources: drop a file on the upload box to send it.
(function () {
  "use strict";
  var zone = document.querySelector("[data-dropzone]");
  if (!zone) return;
  var input = zone.querySelector("input[type=file]");
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.add("dragging"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function () { zone.classList.remove("dragging"); });
  });
  zone.addEventListener("drop", function (e) {
    e.preventDefault();
    if (!e.dataTransfer || !e.dataTransfer.files.length) return;
    input.files = e.dataTransfer.files;
    if (input.form.requestSubmit) input.form.requestSubmit(); else input.form.submit();
  });
})();

// Settings: the widget preview follows the colour, title and position fields as they change.
(function () {
  "use strict";
  var preview = document.querySelector("[data-widget-preview]");
  if (!preview) return;
  var form = preview.closest("form");
  var colour = form.querySelector("input[name=primary_color]");
  var title = form.querySelector("input[name=widget_title]");
  var position = form.querySelector("select[name=position]");
  var head = preview.querySelector("[data-preview-head]");
  var launcher = preview.querySelector("[data-preview-launcher]");
  var fallbackTitle = head.textContent;
  function update() {
    if (colour && /^#[0-9a-fA-F]{6}$/.test(colour.value)) {
      head.style.background = colour.value;
      launcher.style.background = colour.value;
    }
    if (title) head.textContent = title.value.trim() || fallbackTitle;
    if (position) preview.classList.toggle("left", position.value === "bottom-left");
  }
  [colour, title, position].forEach(function (field) { if (field) field.addEventListener("input", update); });
  if (position) position.addEventListener("change", update);
  update();
})();
