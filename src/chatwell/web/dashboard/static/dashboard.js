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
  var busy = function (status) {
    return status === "pending" || status === "processing" || status === "crawling" || status === "ingesting";
  };

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
          status.textContent = source.status + (busy(source.status) && source.progress > 0 ?
            " " + Math.round(source.progress * 100) + "%" : "");
          status.className = "status status-" + (busy(source.status) ? "processing" : source.status);
          row.querySelector('[data-field="chunk_count"]').textContent = String(source.chunk_count);
          row.querySelector('[data-field="error"]').textContent = source.error || "";
          var crawl = source.crawl;
          if (crawl) {
            // A crawl is one row: its pages found / ingested / failed, and a progress bar.
            ["found", "ingested", "failed"].forEach(function (name) {
              var count = row.querySelector('[data-count="' + name + '"]');
              if (count) count.textContent = String(crawl[name]);
            });
            var bar = row.querySelector('[data-field="progress"]');
            if (bar) { bar.value = crawl.progress; bar.hidden = !busy(source.status); }
          }
          if (busy(source.status)) pending = true;
        });
        if (pending) window.setTimeout(refresh, 1500);
      })
      .catch(function () { window.setTimeout(refresh, 5000); });
  }

  var anyBusy = Array.prototype.some.call(table.querySelectorAll('[data-field="status"]'), function (el) {
    return busy(el.textContent.trim().split(" ")[0]);
  });
  if (anyBusy) window.setTimeout(refresh, 1000);
})();

// The Playground tab: a multi-turn chat kept in the page. Each question is POSTed with the CSRF
// header and the earlier turns (history, JSON); the answer is read as server-sent events while it
// streams (as text), then replaced by the server's safe Markdown rendering ("rendered"), whose
// [n] markers link to the answer's citations. The retrieved passages are listed per answer.
(function () {
  var form = document.getElementById("playground");
  if (!form || !window.fetch || !window.TextDecoder) return;
  var log = document.getElementById("playground-log");
  var template = document.getElementById("playground-turn");
  var input = form.querySelector("textarea[name=question]");
  var historyField = form.querySelector("input[name=history]");
  var button = form.querySelector("button[type=submit]");
  var history = [], turns = 0;

  function cell(row, text) { var td = document.createElement("td"); td.textContent = text; row.appendChild(td); }
  function score(value) { return typeof value === "number" ? value.toFixed(3) : ""; }

  function linkCitations(root, prefix) {
    // [n] in the rendered answer's text becomes a link to citation n of this answer.
    var walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT), nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    nodes.forEach(function (node) {
      if (!/\[\d+\]/.test(node.nodeValue) || (node.parentNode.closest && node.parentNode.closest("a, code"))) return;
      var parts = node.nodeValue.split(/(\[\d+\])/), fragment = document.createDocumentFragment();
      parts.forEach(function (part) {
        var found = /^\[(\d+)\]$/.exec(part);
        if (found && document.getElementById(prefix + found[1])) {
          var a = document.createElement("a");
          a.href = "#" + prefix + found[1];
          a.className = "cite";
          a.textContent = part;
          fragment.appendChild(a);
        } else if (part) fragment.appendChild(document.createTextNode(part));
      });
      node.parentNode.replaceChild(fragment, node);
    });
  }

  function startTurn(question) {
    turns += 1;
    var turn = template.content.firstElementChild.cloneNode(true);
    var part = function (name) { return turn.querySelector('[data-part="' + name + '"]'); };
    turn.id = "turn-" + turns;
    part("question").textContent = question;
    log.appendChild(turn);
    turn.scrollIntoView({ block: "end" });
    var prefix = "turn-" + turns + "-cite-", text = "";
    return {
      element: turn,
      answerText: function () { return text; },
      handle: function (name, data) {
        var answer = part("answer"), status = part("status"), notices = part("notices");
        if (name === "status") status.textContent = data.stage + "…";
        else if (name === "delta") { text += data.text; answer.textContent = text; }
        else if (name === "replace") { text = data.text; answer.textContent = text; }
        else if (name === "notice") notices.textContent += (notices.textContent ? " " : "") + data.message;
        else if (name === "error") { status.textContent = "failed"; notices.textContent = data.message; notices.className = "error"; }
        else if (name === "done") status.textContent = "";
        else if (name === "usage") status.setAttribute("title", data.model + ": " + data.prompt_tokens + " + " + data.completion_tokens + " tokens");
        else if (name === "citations") {
          var list = part("citations");
          data.citations.forEach(function (c) {
            var li = document.createElement("li");
            li.className = "citation";
            li.id = prefix + c.index;
            li.appendChild(document.createTextNode("[" + c.index + "] "));
            var name = (c.title || "a deleted source") + (c.page ? " (page " + c.page + ")" : "");
            if (c.url && /^https?:\/\//i.test(c.url)) {
              var a = document.createElement("a");
              a.href = c.url; a.target = "_blank"; a.rel = "noopener noreferrer";
              a.textContent = name;
              li.appendChild(a);
            } else li.appendChild(document.createTextNode(name));
            li.appendChild(document.createTextNode(" · score " + score(c.score)));
            list.appendChild(li);
          });
          list.hidden = !list.children.length;
        } else if (name === "passages") {
          part("passage-count").textContent = String(data.passages.length);
          data.passages.forEach(function (p) {
            var row = document.createElement("tr");
            row.className = "passage";
            cell(row, score(p.score));
            cell(row, score(p.similarity));
            cell(row, p.title + (p.heading ? " · " + p.heading : ""));
            cell(row, p.text);
            part("passages").appendChild(row);
          });
        } else if (name === "rendered") {
          text = data.text;
          answer.innerHTML = data.html;  // rendered by the server: no raw HTML, checked links
          answer.classList.add("rendered");
          linkCitations(answer, prefix);
          turn.setAttribute("data-done", "");
        }
      }
    };
  }

  function send() {
    var question = input.value.trim();
    if (!question || button.disabled) return;
    historyField.value = JSON.stringify(history);
    var body = new FormData(form);
    var turn = startTurn(question);
    input.value = "";
    button.disabled = true;
    var failed = function (message) {
      var notices = turn.element.querySelector('[data-part="notices"]');
      turn.element.querySelector('[data-part="status"]').textContent = "failed";
      notices.className = "error";
      notices.textContent = message;
    };
    fetch(form.action, {
      method: "POST", credentials: "same-origin", body: body,
      headers: { "X-CSRF-Token": form.getAttribute("data-csrf"), Accept: "text/event-stream" }
    }).then(function (response) {
      if (!response.ok || !response.body) {
        failed("The request was refused (HTTP " + response.status + ").");
        return null;
      }
      return chatwellReadEvents(response, turn.handle).then(function () {
        if (turn.answerText()) {
          history.push({ role: "user", content: question }, { role: "assistant", content: turn.answerText() });
          history = history.slice(-40);
        }
      });
    }).catch(function () {
      failed("The connection was lost.");
    }).then(function () { button.disabled = false; input.focus(); });
  }

  form.addEventListener("submit", function (event) { event.preventDefault(); send(); });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); send(); }
  });
  document.getElementById("playground-reset").addEventListener("click", function () {
    history = [];
    while (log.firstChild) log.removeChild(log.firstChild);
    input.focus();
  });
})();

// Every page: the header's online/away toggle, and the pulse. While a page is open it asks
// /dashboard/pulse.json every few seconds, which keeps an online member online (presence lapses
// after a minute without it), badges the title and the Inbox link with the number of visitors
// waiting, and alerts (title, browser notification if allowed, a short tone) on a new handoff or
// a new visitor message in a held conversation.
(function () {
  var toggle = document.getElementById("presence-toggle");
  if (!toggle || !window.fetch) return;
  var EVERY_MS = 5000;
  var button = toggle.querySelector("button"), label = toggle.querySelector("[data-label]");
  var field = toggle.querySelector("input[name=online]"), badge = document.getElementById("waiting-badge");
  var baseTitle = document.title, latest = null, waiting = null, flashing = null;

  function show(online) {
    button.setAttribute("aria-pressed", online ? "true" : "false");
    label.textContent = online ? "Online" : "Away";
    button.title = online ? "You are online: visitors can ask for you. Click to go away." :
      "You are away: visitors are offered the contact form. Click to go online.";
    field.value = online ? "0" : "1";
  }
  function title(count) {
    return (count ? "(" + count + ") " : "") + baseTitle;
  }
  function tone() {
    try {
      var Context = window.AudioContext || window.webkitAudioContext, audio = new Context();
      var osc = audio.createOscillator(), gain = audio.createGain();
      osc.frequency.value = 880; gain.gain.value = 0.05;
      osc.connect(gain); gain.connect(audio.destination);
      osc.start(); osc.stop(audio.currentTime + 0.15);
    } catch (e) { /* no sound before the page was touched: the title still says it */ }
  }
  function alertAgent(text) {
    document.documentElement.setAttribute("data-alert", text);
    if (window.Notification && Notification.permission === "granted" && document.hidden) {
      try { new Notification("chatwell", { body: text }); } catch (e) { /* not allowed here */ }
    }
    tone();
    if (flashing) window.clearInterval(flashing);
    var on = false, times = 0;
    flashing = window.setInterval(function () {
      on = !on; times += 1;
      document.title = on ? "● " + text : title(waiting);
      if (times >= 8) { window.clearInterval(flashing); flashing = null; document.title = title(waiting); }
    }, 700);
  }
  function pulse() {
    fetch(toggle.getAttribute("data-pulse"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        show(data.me_online);
        badge.hidden = !data.waiting;
        badge.textContent = data.waiting ? String(data.waiting) : "";
        if (waiting !== null && data.waiting > waiting) alertAgent("A visitor asks for a person");
        else if (latest !== null && data.latest_visitor_message && data.latest_visitor_message !== latest) alertAgent("A visitor wrote");
        waiting = data.waiting;
        latest = data.latest_visitor_message;
        if (!flashing) document.title = title(waiting);
        document.documentElement.setAttribute("data-pulse", String(Date.now()));
      })
      .catch(function () { /* the next pulse tries again */ })
      .then(function () { window.setTimeout(pulse, EVERY_MS); });
  }
  toggle.addEventListener("submit", function (event) {
    event.preventDefault();
    var body = new FormData(toggle);
    fetch(toggle.action, {
      method: "POST", credentials: "same-origin", body: body,
      headers: { "X-CSRF-Token": toggle.getAttribute("data-csrf"), Accept: "application/json" }
    }).then(function (r) { return r.ok ? r.json() : null; }).then(function (data) {
      if (!data) return;
      show(data.online);
      if (data.online && window.Notification && Notification.permission === "default") Notification.requestPermission();
    });
  });
  pulse();
})();

// Server-sent events read from a fetch response: onFrame(name, data) per frame.
function chatwellReadEvents(response, onFrame) {
  var reader = response.body.getReader(), decoder = new TextDecoder(), buffer = "";
  function parse(block) {
    var name = "message", lines = [];
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event: ") === 0) name = line.slice(7);
      else if (line.indexOf("data: ") === 0) lines.push(line.slice(6));
    });
    if (!lines.length) return;
    try { onFrame(name, JSON.parse(lines.join("\n"))); } catch (e) { /* a malformed frame is skipped */ }
  }
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
}

// A conversation page is live: it listens to the conversation's feed and re-reads itself when a
// message or the state was stored (no reload, the reply draft kept); it shows when the visitor
// types and tells the visitor when the agent types; canned replies fill the reply box.
(function () {
  var root = document.getElementById("conversation");
  if (!root || !window.fetch || !window.TextDecoder) return;
  var note = document.getElementById("visitor-typing"), hideNote = null, lastTyping = 0;

  function swap(fresh, id) {
    var now = document.getElementById(id), next = fresh.getElementById(id);
    if (now && next) now.replaceWith(document.importNode(next, true));
  }
  function reread() {
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var wrote = document.querySelectorAll("#transcript > li").length;
        var busy = document.activeElement && document.activeElement.closest && document.activeElement.closest("#transcript");
        ["transcript", "conversation-head", "visitor-context"].forEach(function (id) {
          if (!(id === "transcript" && busy)) swap(fresh, id); // never under the cursor of a half-typed answer
        });
        var area = document.getElementById("reply-area"), nextArea = fresh.getElementById("reply-area");
        if (area && nextArea && area.getAttribute("data-held") !== nextArea.getAttribute("data-held")) swap(fresh, "reply-area");
        if (document.querySelectorAll("#transcript > li").length > wrote) {
          note.hidden = true;
          var last = document.querySelector("#transcript > li:last-child");
          if (last) last.scrollIntoView({ block: "nearest" });
        }
      })
      .catch(function () { /* the next change or the feed's periodic nudge reads again */ });
  }
  function listen() {
    fetch(root.getAttribute("data-feed"), { credentials: "same-origin", headers: { Accept: "text/event-stream" } })
      .then(function (r) {
        if (!r.ok || !r.body) throw new Error("feed " + r.status);
        root.setAttribute("data-live", "1");
        return chatwellReadEvents(r, function (name) {
          if (name === "changed") reread();
          else if (name === "typing") {
            note.hidden = false;
            if (hideNote) window.clearTimeout(hideNote);
            hideNote = window.setTimeout(function () { note.hidden = true; }, 6000);
          }
        });
      })
      .then(function () { window.setTimeout(listen, 1000); }, function () { window.setTimeout(listen, 5000); });
  }
  document.addEventListener("input", function (event) {
    if (!event.target.closest || !event.target.closest("#reply-form")) return;
    var now = Date.now();
    if (now - lastTyping < 3000) return;
    lastTyping = now;
    fetch(root.getAttribute("data-typing"), { method: "POST", credentials: "same-origin",
      headers: { "X-CSRF-Token": root.getAttribute("data-csrf") } }).catch(function () {});
  });
  document.addEventListener("click", function (event) {
    var chip = event.target.closest ? event.target.closest("[data-canned]") : null;
    if (!chip) return;
    var box = document.querySelector("#reply-form textarea");
    box.value = chip.getAttribute("data-canned");
    box.focus();
  });
  listen();
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
  var warning = preview.parentNode.querySelector("[data-contrast-warning]");
  // The same WCAG computation as the widget: white text, or dark text where white is unreadable.
  function luminance(hex) {
    var c = [1, 3, 5].map(function (i) {
      var v = parseInt(hex.substr(i, 2), 16) / 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  }
  function contrast(a, b) { var x = luminance(a), y = luminance(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); }
  function update() {
    if (colour && /^#[0-9a-fA-F]{6}$/.test(colour.value)) {
      var white = contrast(colour.value, "#ffffff"), dark = contrast(colour.value, "#111827");
      var text = white >= 4.5 || white >= dark ? "#ffffff" : "#111827";
      head.style.background = colour.value;
      head.style.color = text;
      launcher.style.background = colour.value;
      if (warning) {
        warning.hidden = white >= 4.5;
        warning.textContent = white >= 4.5 ? "" : "A light colour: white text on it reads at " + white.toFixed(1) +
          ":1 (4.5:1 is needed), so the widget uses dark text on it and a darker shade for links.";
      }
    }
    if (title) head.textContent = title.value.trim() || fallbackTitle;
    if (position) preview.classList.toggle("left", position.value === "bottom-left");
  }
  [colour, title, position].forEach(function (field) { if (field) field.addEventListener("input", update); });
  if (position) position.addEventListener("change", update);
  update();
})();

// Settings: the contact form's field editor adds and removes rows (each row is one field).
(function () {
  "use strict";
  var editor = document.querySelector("[data-field-editor]");
  if (!editor) return;
  var body = editor.querySelector("tbody"), max = Number(editor.getAttribute("data-max")) || 20;
  function rows() { return body.querySelectorAll("[data-field-row]"); }
  editor.addEventListener("click", function (event) {
    if (event.target.closest("[data-add-field]")) {
      var all = rows(), last = all[all.length - 1], used = [];
      Array.prototype.forEach.call(all, function (row) { used.push(Number(row.querySelector("input").name.split("_")[1])); });
      var next = 0;
      while (used.indexOf(next) >= 0) next += 1;
      if (next >= max) return;
      var row = last.cloneNode(true);
      row.hidden = false;
      row.querySelectorAll("input,select").forEach(function (input) {
        input.name = input.name.replace(/^cf_\d+_/, "cf_" + next + "_");
        input.setAttribute("aria-label", input.getAttribute("aria-label").replace(/\d+/, String(next + 1)));
        if (input.type === "checkbox") input.checked = false;
        else if (input.tagName === "SELECT") input.selectedIndex = 0;
        else input.value = "";
        input.removeAttribute("aria-invalid");
      });
      body.appendChild(row);
      row.querySelector("input").focus();
    } else if (event.target.closest("[data-remove-field]")) {
      var gone = event.target.closest("[data-field-row]");
      gone.querySelectorAll("input").forEach(function (input) { if (input.type === "checkbox") input.checked = false; else input.value = ""; });
      if (rows().length > 1) gone.remove();
    }
  });
})();

// Forms with data-inline-errors are saved in the background: a refusal is shown beside the field
// at fault and every other edit stays on the page (a plain submit would leave it for an error page).
(function () {
  "use strict";
  document.querySelectorAll("form[data-inline-errors]").forEach(function (form) {
    var banner = document.createElement("p");
    banner.className = "notice";
    banner.setAttribute("role", "status");
    banner.hidden = true;
    form.insertBefore(banner, form.firstChild);
    function clear() {
      form.querySelectorAll(".field-error").forEach(function (node) { node.remove(); });
      form.querySelectorAll("[aria-invalid]").forEach(function (node) { node.removeAttribute("aria-invalid"); });
      banner.hidden = true;
      banner.className = "notice";
    }
    function show(message, field) {
      var target = field ? (form.querySelector('[name="' + field + '"]') || document.getElementById(field)) : null;
      var note = document.createElement("p");
      note.className = "field-error error";
      note.setAttribute("role", "alert");
      note.textContent = message;
      if (!target) {
        banner.hidden = false;
        banner.className = "notice error";
        banner.textContent = message;
        banner.scrollIntoView({ block: "center" });
        return;
      }
      target.setAttribute("aria-invalid", "true");
      var anchor = target.closest("label") || target.closest("table") || target;
      if (target.closest("[data-field-editor]")) anchor = target.closest("[data-field-editor]");
      anchor.insertAdjacentElement("afterend", note);
      target.scrollIntoView({ block: "center" });
      if (target.focus) target.focus();
    }
    form.addEventListener("submit", function (event) {
      if (!window.fetch || !window.FormData) return;
      event.preventDefault();
      clear();
      fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin",
                           headers: { Accept: "application/json" } })
        .then(function (r) {
          var json = (r.headers.get("content-type") || "").indexOf("application/json") === 0;
          if (!json) { form.removeAttribute("data-inline-errors"); HTMLFormElement.prototype.submit.call(form); return null; }
          return r.json();
        })
        .then(function (data) {
          if (!data) return;
          if (data.saved && data.page) { // a page to see once (a new webhook secret): shown in place
            var fresh = new DOMParser().parseFromString(data.page, "text/html").querySelector("main");
            var main = document.querySelector("main");
            if (fresh && main) main.replaceWith(document.importNode(fresh, true));
          } else if (data.saved) window.location.assign(form.action + "?saved=1"); // what was stored, read back
          else show(data.message || "The settings could not be saved.", data.field);
        })
        .catch(function () { show("The settings could not be saved: the server did not answer.", null); });
    });
  });
})();

// Sources: a file is uploaded with a progress bar (large files take a while); the answer (the
// Sources tab again, or the tab with the refusal beside the form) replaces the page.
(function () {
  "use strict";
  var form = document.querySelector("form[enctype='multipart/form-data'][action$='/sources']");
  if (!form || !window.XMLHttpRequest || !window.FormData) return;
  var bar = document.createElement("progress");
  bar.max = 100;
  bar.value = 0;
  bar.hidden = true;
  bar.setAttribute("aria-label", "Upload progress");
  form.appendChild(bar);
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.upload.onprogress = function (e) { if (e.lengthComputable) bar.value = Math.round(100 * e.loaded / e.total); };
    xhr.onload = function () {
      if (xhr.status < 400) { window.location.assign(xhr.responseURL || window.location.href); return; }
      var fresh = new DOMParser().parseFromString(xhr.responseText, "text/html").querySelector("main");
      var main = document.querySelector("main");
      if (fresh && main) main.replaceWith(document.importNode(fresh, true));
      else window.location.reload();
    };
    xhr.onerror = function () { bar.hidden = true; window.alert("The upload failed: the server did not answer."); };
    bar.hidden = false;
    xhr.send(new FormData(form));
  });
})();
