/*! chatwell widget — dependency-free, Shadow DOM, talks to the public chat API (/v1/public/...).
 *
 * <script src="https://HOST/widget.js" data-bot-id="BOT_ID" async></script>
 *   data-mode="bubble" (default) | "inline" (with data-target="#css-selector") | "page"
 *
 * window.chatwell: open(), close(), toggle(), send(text), identify({name, email, ...}),
 *   on(event, fn) / off(event, fn) for "ready", "open", "close", "message", "lead", "handoff".
 *
 * Model and visitor text is never parsed as HTML: every node is built with DOM APIs and text goes
 * in through textContent; a link is made only of an absolute http(s) URL written plainly (safeLink).
 */
(function () {
  "use strict";
  if (window.chatwell && window.chatwell.__loaded) return;

  var script = document.currentScript || document.querySelector("script[src*='widget.js'][data-bot-id]");
  if (!script) return;
  var BOT = script.getAttribute("data-bot-id");
  var MODE = script.getAttribute("data-mode") || "bubble";
  var API = new URL(script.src, location.href).origin;
  var POLL_MS = Number(script.getAttribute("data-poll-ms")) || 3000;
  var STREAM_RETRY_MS = 30000;
  var listeners = {};
  var store = storage();

  function storage() {
    try { localStorage.setItem("chatwell:probe", "1"); localStorage.removeItem("chatwell:probe"); return localStorage; }
    catch (e) { var mem = {}; return { getItem: function (k) { return mem[k] || null; }, setItem: function (k, v) { mem[k] = String(v); }, removeItem: function (k) { delete mem[k]; } }; }
  }
  function key(name) { return "chatwell:" + BOT + ":" + name; }
  function emit(name, detail) {
    (listeners[name] || []).slice().forEach(function (fn) { try { fn(detail); } catch (e) { console.error(e); } });
    try { window.dispatchEvent(new CustomEvent("chatwell:" + name, { detail: detail })); } catch (e) { /* old browsers */ }
  }
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "s-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }
  // Server-sent events of a fetch response: onFrame(event, data) for each frame with JSON data.
  function readEvents(response, onFrame) {
    var reader = response.body.getReader(), decoder = new TextDecoder(), buffer = "";
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) return;
        buffer += decoder.decode(chunk.value, { stream: true });
        var frames = buffer.split(/\r?\n\r?\n/);
        buffer = frames.pop();
        frames.forEach(function (frame) {
          var name = "message", data = [];
          frame.split(/\r?\n/).forEach(function (l) {
            if (l.indexOf("data:") === 0) data.push(l.slice(5).replace(/^ /, ""));
            else if (l.indexOf("event:") === 0) name = l.slice(6).trim();
          });
          if (!data.length) return; // a keep-alive comment
          try { onFrame(name, JSON.parse(data.join("\n"))); } catch (e) { /* a broken frame */ }
        });
        return pump();
      });
    }
    return pump();
  }
  // WCAG contrast: the text colour readable on the brand colour, and the brand colour darkened
  // until it reads as text on white (a light brand colour made header, bubbles and Send unreadable).
  function luminance(hex) {
    var c = [1, 3, 5].map(function (i) {
      var v = parseInt(hex.substr(i, 2), 16) / 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  }
  function contrast(a, b) {
    var x = luminance(a), y = luminance(b);
    return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
  }
  function textOn(hex) { return contrast(hex, "#ffffff") >= 4.5 || contrast(hex, "#ffffff") >= contrast(hex, "#111827") ? "#ffffff" : "#111827"; }
  function readableOnWhite(hex) {
    var rgb = [1, 3, 5].map(function (i) { return parseInt(hex.substr(i, 2), 16); }), out = hex, k = 1;
    while (contrast(out, "#ffffff") < 4.5 && k > 0) {
      k -= 0.05;
      out = "#" + rgb.map(function (v) { var h = Math.round(v * Math.max(k, 0)).toString(16); return h.length < 2 ? "0" + h : h; }).join("");
    }
    return out;
  }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) return;
      if (name === "text") node.textContent = value;
      else if (name.slice(0, 2) === "on") node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child); });
    return node;
  }
  var ICONS = {
    chat: "M4 3h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z",
    up: "M2 21h4V9H2v12zm20-11a2 2 0 0 0-2-2h-6.3l1-4.6v-.3a1.5 1.5 0 0 0-.4-1L13.2 1 6.6 7.6A2 2 0 0 0 6 9v10a2 2 0 0 0 2 2h9a2 2 0 0 0 1.8-1.2l3-7.1c.1-.2.2-.5.2-.7v-2z",
    down: "M15 3H6a2 2 0 0 0-1.8 1.2l-3 7.1c-.1.2-.2.5-.2.7v2a2 2 0 0 0 2 2h6.3l-1 4.6v.3c0 .4.2.8.4 1.1L9.8 23l6.6-6.6c.4-.4.6-.9.6-1.4V5a2 2 0 0 0-2-2zm4 0v12h4V3h-4z",
    image: "M21 19V5a2 2 0 0 0-2-2H5a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h14a2 2 0 0 0 2-2zM8.5 13.5l2.5 3 3.5-4.5 4.5 6H5l3.5-4.5z"
  };
  function icon(name, size) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "cw-icon");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", String(size || 16));
    svg.setAttribute("height", String(size || 16));
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", ICONS[name]);
    path.setAttribute("fill", "currentColor");
    svg.appendChild(path);
    return svg;
  }
  function safeUrl(href) { // an image of the bot's own settings (its avatar): http(s), maybe relative
    try {
      var url = new URL(href, location.href);
      return /^https?:$/.test(url.protocol) ? url.href : null;
    } catch (e) { return null; }
  }
  // A link the visitor can follow: only an absolute http(s) URL written plainly, as the server's
  // link guard lets through. Anything a browser would bend into one (//host, https:/\host,
  // controls, spaces or backslashes inside, user:pass@) and every other scheme stays text.
  var PLAIN_LINK = /^https?:\/\/[a-z0-9\[]/i;
  function safeLink(href) {
    if (typeof href !== "string" || !PLAIN_LINK.test(href) || /[\u0000-\u0020\u007f-\u009f\\]/.test(href)) return null;
    try {
      var url = new URL(href);
      if (!/^https?:$/.test(url.protocol) || !url.hostname || url.username || url.password) return null;
      return url.href;
    } catch (e) { return null; }
  }

  function cites(list) {
    return (list || []).map(function (c, i) { return { index: c.index || i + 1, title: c.page_title, url: c.source_url }; });
  }

  // ---------------------------------------------------------------- safe Markdown subset
  // Paragraphs, **bold**, *italic*/_italic_, `code`, fenced code blocks, - / 1. lists,
  // [links](https://...), and [n] citation markers. Output is DOM nodes only.
  function inline(text, parent, citations) {
    var pattern = /(\*\*([^*]+)\*\*)|(`([^`]+)`)|(\[([^\]]+)\]\(([^)\s]+)\))|(\*([^*\s][^*]*)\*)|(\b_([^_]+)_\b)|(\[(\d{1,2})\])/g;
    var last = 0, match;
    while ((match = pattern.exec(text))) {
      if (match.index > last) parent.appendChild(document.createTextNode(text.slice(last, match.index)));
      if (match[2]) parent.appendChild(el("strong", { text: match[2] }));
      else if (match[4]) parent.appendChild(el("code", { text: match[4] }));
      else if (match[6]) {
        var href = safeLink(match[7]);
        parent.appendChild(href ? el("a", { href: href, target: "_blank", rel: "noopener noreferrer nofollow", text: match[6] }) : document.createTextNode(match[6]));
      } else if (match[9]) parent.appendChild(el("em", { text: match[9] }));
      else if (match[11]) parent.appendChild(el("em", { text: match[11] }));
      else if (match[13]) {
        var n = Number(match[13]);
        var cite = (citations || []).filter(function (c) { return c.index === n; })[0];
        var sup = el("sup", { class: "cw-cite", text: "[" + n + "]" });
        var citeHref = cite && cite.url && safeLink(cite.url);
        if (citeHref) {
          sup = el("sup", { class: "cw-cite" }, [el("a", { href: citeHref, target: "_blank", rel: "noopener noreferrer nofollow", title: cite.title, text: "[" + n + "]" })]);
        } else if (cite) sup.setAttribute("title", cite.title);
        parent.appendChild(sup);
      }
      last = pattern.lastIndex;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }
  function markdown(text, citations) {
    var root = el("div", { class: "cw-md" });
    var blocks = String(text).replace(/\r\n/g, "\n").split(/\n```/);
    blocks.forEach(function (block, i) {
      if (i % 2 === 1) { // inside a fence: drop the language tag line
        var body = block.replace(/^[^\n]*\n/, "");
        root.appendChild(el("pre", {}, [el("code", { text: body.replace(/```\s*$/, "") })]));
        return;
      }
      if (i === 0 && block.indexOf("```") === 0) block = block.slice(3);
      var list = null;
      block.split(/\n{2,}/).forEach(function (para) {
        var lines = para.split("\n");
        var isList = lines.every(function (l) { return /^\s*([-*]|\d+\.)\s+/.test(l) || !l.trim(); }) && lines.some(function (l) { return l.trim(); });
        if (isList) {
          list = el(/^\s*\d+\./.test(lines[0]) ? "ol" : "ul");
          lines.forEach(function (l) {
            if (!l.trim()) return;
            var li = el("li");
            inline(l.replace(/^\s*([-*]|\d+\.)\s+/, ""), li, citations);
            list.appendChild(li);
          });
          root.appendChild(list);
        } else if (para.trim()) {
          var p = el("p");
          lines.forEach(function (l, j) { if (j) p.appendChild(el("br")); inline(l, p, citations); });
          root.appendChild(p);
        }
      });
    });
    return root;
  }

  // ---------------------------------------------------------------- styles
  var CSS = [
    ":host{all:initial !important;--cw-accent:#2563eb;--cw-on-accent:#fff;--cw-accent-text:#2563eb}",
    ".cw-bubble,.cw-inline,.cw-page{all:initial;display:block;height:100%;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#111827;text-align:left;letter-spacing:normal;text-transform:none}",
    ".cw-icon{display:inline-block;vertical-align:middle}",
    "*{box-sizing:border-box}",
    ".cw-launcher{position:fixed;bottom:20px;right:20px;z-index:2147483000;border:0;border-radius:28px;min-width:56px;height:56px;padding:0 18px;background:var(--cw-accent);color:var(--cw-on-accent);font:inherit;font-weight:600;cursor:pointer;box-shadow:0 6px 20px rgba(0,0,0,.25)}",
    ".cw-left .cw-launcher,.cw-left .cw-panel{right:auto;left:20px}",
    ".cw-launcher:focus-visible,button:focus-visible,textarea:focus-visible,input:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}",
    ".cw-panel{position:fixed;bottom:88px;right:20px;z-index:2147483000;width:370px;max-width:calc(100vw - 24px);height:560px;max-height:calc(100vh - 110px);display:flex;flex-direction:column;background:#fff;border-radius:14px;box-shadow:0 12px 40px rgba(0,0,0,.25);overflow:hidden}",
    ".cw-panel[hidden]{display:none}",
    ".cw-inline .cw-panel,.cw-page .cw-panel{position:static;width:100%;max-width:none;height:100%;max-height:none;box-shadow:none;border:1px solid #e5e7eb}",
    ".cw-page .cw-panel{border:0;border-radius:0;height:100vh}",
    ".cw-head{display:flex;align-items:center;gap:10px;padding:12px 14px;background:var(--cw-accent);color:var(--cw-on-accent)}",
    ".cw-head img{width:28px;height:28px;border-radius:50%;object-fit:cover;background:#fff}",
    ".cw-title{flex:1;font-weight:600;font-size:15px;margin:0}",
    ".cw-head button{background:transparent;border:0;color:inherit;font-size:20px;line-height:1;cursor:pointer;padding:4px 8px;border-radius:6px}",
    ".cw-log{flex:1;overflow-y:auto;padding:14px;display:flex;flex-direction:column;gap:10px;background:#f9fafb}",
    ".cw-msg{max-width:85%;padding:9px 12px;border-radius:12px;word-wrap:break-word;overflow-wrap:anywhere}",
    ".cw-user{align-self:flex-end;background:var(--cw-accent);color:var(--cw-on-accent);border-bottom-right-radius:4px;white-space:pre-wrap}",
    ".cw-assistant,.cw-agent{align-self:flex-start;background:#fff;border:1px solid #e5e7eb;border-bottom-left-radius:4px}",
    ".cw-agent{border-color:#10b981}",
    ".cw-who{display:block;font-size:11px;color:#059669;font-weight:600;margin-bottom:2px}",
    ".cw-system{align-self:center;font-size:12px;color:#6b7280;text-align:center;max-width:95%}",
    ".cw-warn{color:#b45309}",
    ".cw-md p{margin:0 0 6px}.cw-md p:last-child{margin:0}.cw-md ul,.cw-md ol{margin:4px 0;padding-left:20px}",
    ".cw-md pre{background:#111827;color:#f9fafb;padding:8px;border-radius:6px;overflow-x:auto;font-size:12px}",
    ".cw-md code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px}",
    ".cw-md a,.cw-sources a{color:var(--cw-accent-text)}",
    ".cw-cite{font-size:10px}",
    ".cw-sources{margin-top:6px;font-size:12px;color:#4b5563;border-top:1px solid #f3f4f6;padding-top:4px}",
    ".cw-sources ol{margin:2px 0 0;padding-left:18px}",
    ".cw-actions{display:flex;gap:4px;margin-top:4px}",
    ".cw-actions button{border:1px solid #e5e7eb;background:#fff;color:#6b7280;border-radius:6px;cursor:pointer;padding:2px 7px;min-width:44px;min-height:44px}",
    ".cw-actions button[aria-pressed=true]{background:#dbeafe;border-color:var(--cw-accent);color:var(--cw-accent)}",
    ".cw-status[hidden]{display:none}",
    ".cw-close{min-width:44px;min-height:44px;margin-left:auto;border:0;background:transparent;color:inherit;font-size:22px;cursor:pointer}",
    ".cw-status{padding:6px 14px;font-size:12px;color:#1f2937;background:#eff6ff;border-top:1px solid #dbeafe}",
    ".cw-suggest{display:flex;flex-wrap:wrap;gap:6px;padding:0 14px 8px;background:#f9fafb}",
    ".cw-suggest button{border:1px solid var(--cw-accent-text);color:var(--cw-accent-text);background:#fff;border-radius:16px;padding:4px 12px;min-height:44px;cursor:pointer;font:inherit;font-size:14px}",
    ".cw-bar{display:flex;gap:6px;padding:6px 14px;border-top:1px solid #e5e7eb;background:#fff;flex-wrap:wrap}",
    ".cw-bar button{border:0;background:transparent;color:var(--cw-accent-text);cursor:pointer;font:inherit;font-size:13px;padding:2px 8px;min-height:44px}",
    ".cw-form{display:flex;gap:8px;padding:10px 14px;border-top:1px solid #e5e7eb;background:#fff;align-items:flex-end}",
    ".cw-form textarea{flex:1;resize:none;border:1px solid #d1d5db;border-radius:10px;padding:10px;font:inherit;font-size:16px;max-height:120px;min-height:44px}",
    ".cw-form button{border:0;background:var(--cw-accent);color:var(--cw-on-accent);border-radius:10px;padding:9px 14px;min-height:44px;min-width:44px;font:inherit;font-weight:600;cursor:pointer}",
    ".cw-form button:disabled{opacity:.5;cursor:default}",
    ".cw-attach{background:#fff!important;color:var(--cw-accent)!important;border:1px solid #d1d5db!important;padding:8px 10px!important}",
    ".cw-lead{padding:12px 14px;border-top:1px solid #e5e7eb;background:#fff;display:flex;flex-direction:column;gap:6px}",
    ".cw-lead label{font-size:12px;color:#374151;display:flex;flex-direction:column;gap:2px}",
    ".cw-lead input,.cw-lead textarea{border:1px solid #d1d5db;border-radius:8px;padding:6px 8px;font:inherit}",
    ".cw-lead .cw-row{display:flex;gap:8px;justify-content:flex-end}",
    ".cw-lead button{min-height:44px;border:0;background:var(--cw-accent);color:var(--cw-on-accent);border-radius:8px;padding:6px 12px;cursor:pointer;font:inherit}",
    ".cw-lead button.cw-secondary{background:#e5e7eb;color:#111827}",
    ".cw-sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}",
    ".cw-typing{display:inline-block;width:36px;text-align:left}.cw-typing:after{content:'…';animation:cw 1s steps(3) infinite}",
    "@keyframes cw{0%{opacity:.2}50%{opacity:1}100%{opacity:.2}}",
    "@media (max-width:480px){.cw-bubble .cw-panel{right:0;left:0;bottom:0;width:100vw;max-width:100vw;height:100%;max-height:100%;border-radius:0}.cw-is-open .cw-launcher{display:none}}"
  ].join("\n");

  // ---------------------------------------------------------------- the widget
  function Widget(host, mode) {
    this.mode = mode;
    this.host = host;
    this.root = host.attachShadow({ mode: "open" });
    this.config = null;
    this.session = store.getItem(key("session")) || uuid();
    store.setItem(key("session"), this.session);
    this.conversation = store.getItem(key("conversation"));
    this.lastId = null;
    this.status = "open";
    this.busy = false;
    this.userMessages = 0;
    this.identity = {};
    this.pollTimer = null;
    this.stream = null;
    this.leadShown = false;
  }

  Widget.prototype.start = function () {
    var self = this;
    return fetch(API + "/v1/public/bots/" + encodeURIComponent(BOT) + "/config", { credentials: "omit" })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        if (!res.ok) { console.warn("chatwell: this page may not show the bot (" + (res.body.error || "error") + ")"); return; }
        self.config = res.body;
        self.render();
        emit("ready", { bot_id: BOT });
        if (self.conversation) return self.restore();
        self.welcome();
      })
      .catch(function (err) { console.warn("chatwell: could not load the bot", err); });
  };

  Widget.prototype.render = function () {
    var c = this.config, w = c.widget_settings || {}, self = this;
    var style = el("style", { text: CSS });
    this.root.appendChild(style);
    if (/^#[0-9a-fA-F]{6}$/.test(w.primary_color || "")) {
      this.host.style.setProperty("--cw-accent", w.primary_color);
      this.host.style.setProperty("--cw-on-accent", textOn(w.primary_color));
      this.host.style.setProperty("--cw-accent-text", readableOnWhite(w.primary_color));
    }
    var frame = el("div", { class: "cw-" + this.mode + (w.position === "bottom-left" ? " cw-left" : "") });
    var title = w.title || c.bot_name;
    var avatar = w.avatar_url && safeUrl(w.avatar_url) ? el("img", { src: safeUrl(w.avatar_url), alt: "" }) : null;
    this.log = el("div", { class: "cw-log", role: "log", "aria-live": "polite", "aria-label": "Conversation" });
    this.suggest = el("div", { class: "cw-suggest" });
    this.input = el("textarea", { rows: "1", placeholder: "Type your message…", "aria-label": "Your message", maxlength: "8000" });
    this.input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); self.submit(); }
    });
    this.input.addEventListener("input", function () { self.typing(); });
    this.sendButton = el("button", { type: "submit", text: "Send" });
    var form = el("form", { class: "cw-form", onsubmit: function (e) { e.preventDefault(); self.submit(); } },
      [el("label", { class: "cw-sr", text: "Your message" }), this.input, this.sendButton]);
    if (c.allow_user_images) {
      this.file = el("input", { type: "file", accept: "image/png,image/jpeg,image/webp", class: "cw-sr", "aria-label": "Attach an image" });
      this.file.addEventListener("change", function () { self.attachLabel.setAttribute("aria-pressed", String(self.file.files.length > 0)); });
      this.attachLabel = el("button", { type: "button", class: "cw-attach", "aria-label": "Attach an image", "aria-pressed": "false", onclick: function () { self.file.click(); } }, [icon("image", 18)]);
      form.insertBefore(this.attachLabel, this.input);
      form.appendChild(this.file);
    }
    this.bar = el("div", { class: "cw-bar" });
    if (c.handoff_enabled && (c.handoff_trigger === "button" || c.handoff_trigger === "both")) {
      this.bar.appendChild(el("button", { type: "button", class: "cw-human", text: "Talk to a person", onclick: function () { self.handoff(); } }));
    }
    if (c.contact_form_enabled && c.contact_form_trigger !== "after_messages") {
      this.bar.appendChild(el("button", { type: "button", class: "cw-contact", text: "Leave your details", onclick: function () { self.showLead(); } }));
    }
    var closeButton = this.mode === "bubble" ? el("button", { type: "button", class: "cw-close", "aria-label": "Close chat", text: "×", onclick: function () { self.close(); } }) : null;
    this.panel = el("div", { class: "cw-panel", role: this.mode === "bubble" ? "dialog" : "region", "aria-label": title, hidden: this.mode === "bubble" },
      [el("div", { class: "cw-head" }, [avatar, el("h2", { class: "cw-title", text: title }), closeButton]),
        this.log, this.statusLine = el("div", { class: "cw-status", role: "status", hidden: true }), this.suggest, this.bar.childNodes.length ? this.bar : null, form]);
    this.panel.addEventListener("keydown", function (e) { if (e.key === "Escape" && self.mode === "bubble") self.close(); });
    this.frame = frame;
    frame.appendChild(this.panel);
    if (this.mode === "bubble") {
      this.launcher = el("button", { type: "button", class: "cw-launcher", "aria-haspopup": "dialog", "aria-expanded": "false",
        "aria-label": w.launcher_text ? w.launcher_text : "Open chat", onclick: function () { self.toggle(); } },
        [w.launcher_text ? el("span", { text: w.launcher_text }) : icon("chat", 26)]);
      frame.appendChild(this.launcher);
    }
    this.root.appendChild(frame);
    if (c.contact_form_enabled && c.contact_form_trigger === "always") this.showLead();
  };

  Widget.prototype.welcome = function () {
    var c = this.config, self = this;
    if (c.welcome_message) this.bubble("assistant", c.welcome_message, null, null);
    this.suggest.textContent = "";
    if (c.show_suggested_questions && (c.suggested_questions || []).length) {
      c.suggested_questions.slice(0, c.suggested_questions_count || 3).forEach(function (q) {
        self.suggest.appendChild(el("button", { type: "button", text: q, onclick: function () { self.send(q); } }));
      });
    }
  };

  Widget.prototype.open = function () {
    if (!this.panel) return;
    this.panel.hidden = false;
    this.frame.classList.add("cw-is-open");
    if (this.launcher) this.launcher.setAttribute("aria-expanded", "true");
    this.scroll(); // reopened: the newest messages, not the top of the log
    this.input.focus();
    emit("open", {});
  };
  Widget.prototype.close = function () {
    if (!this.panel || this.mode !== "bubble") return;
    this.panel.hidden = true;
    this.frame.classList.remove("cw-is-open");
    this.launcher.setAttribute("aria-expanded", "false");
    this.launcher.focus();
    emit("close", {});
  };
  Widget.prototype.toggle = function () { if (this.panel && this.panel.hidden) this.open(); else this.close(); };

  Widget.prototype.system = function (text, warn) {
    var node = el("div", { class: "cw-msg cw-system" + (warn ? " cw-warn" : ""), role: warn ? "alert" : null, text: text });
    this.log.appendChild(node);
    this.scroll();
    return node;
  };
  Widget.prototype.scroll = function () { this.log.scrollTop = this.log.scrollHeight; };

  Widget.prototype.bubble = function (role, text, id, citations, feedback) {
    var node = el("div", { class: "cw-msg cw-" + role, "data-role": role });
    if (id) node.setAttribute("data-id", id);
    if (role === "user") node.textContent = text;
    else this.fill(node, role, text, citations, id, feedback);
    this.log.appendChild(node);
    this.scroll();
    return node;
  };

  Widget.prototype.fill = function (node, role, text, citations, id, feedback) {
    node.textContent = "";
    if (role === "agent") node.appendChild(el("span", { class: "cw-who", text: this.config.handoff_agent_label || "Support team" }));
    node.appendChild(markdown(text, citations));
    if (citations && citations.length) {
      var list = el("ol");
      citations.forEach(function (c) {
        var label = c.title || "Source";
        var href = c.url && safeLink(c.url);
        list.appendChild(el("li", { value: String(c.index) }, [href ? el("a", { href: href, target: "_blank", rel: "noopener noreferrer nofollow", text: label }) : el("span", { text: label })]));
      });
      node.appendChild(el("div", { class: "cw-sources" }, [el("span", { text: "Sources" }), list]));
    }
    if (role === "assistant" && id) this.feedbackButtons(node, id, feedback);
  };

  Widget.prototype.feedbackButtons = function (node, id, current) {
    var self = this;
    var up = el("button", { type: "button", "aria-label": "Helpful", "aria-pressed": String(current === "positive") }, [icon("up", 14)]);
    var down = el("button", { type: "button", "aria-label": "Not helpful", "aria-pressed": String(current === "negative") }, [icon("down", 14)]);
    function rate(rating, button, other) {
      var next = button.getAttribute("aria-pressed") === "true" ? null : rating;
      fetch(API + "/v1/public/messages/" + encodeURIComponent(id) + "/feedback", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ session_id: self.session, rating: next })
      }).then(function (r) {
        if (!r.ok) return;
        button.setAttribute("aria-pressed", String(next === rating));
        other.setAttribute("aria-pressed", "false");
      });
    }
    up.addEventListener("click", function () { rate("positive", up, down); });
    down.addEventListener("click", function () { rate("negative", down, up); });
    node.appendChild(el("div", { class: "cw-actions" }, [up, down]));
  };

  Widget.prototype.submit = function () {
    if (this.busy && this.stopper) { this.stopper.abort(); return; } // the Send button reads "Stop" meanwhile
    var text = this.input.value.trim();
    if (!text || this.busy) return;
    this.input.value = "";
    this.send(text);
  };

  Widget.prototype.readImage = function () {
    var file = this.file && this.file.files && this.file.files[0];
    if (!file) return Promise.resolve(null);
    if (file.size > 4 * 1024 * 1024) return Promise.reject(new Error("That image is larger than 4 MB."));
    return new Promise(function (resolve, reject) {
      var reader = new FileReader();
      reader.onload = function () { resolve({ data: String(reader.result).split(",")[1], type: file.type }); };
      reader.onerror = function () { reject(new Error("The image could not be read.")); };
      reader.readAsDataURL(file);
    });
  };

  Widget.prototype.send = function (text) {
    var self = this;
    text = String(text || "").trim();
    if (!text || this.busy || !this.config) return Promise.resolve();
    this.open();
    this.busy = true;
    this.stopper = window.AbortController ? new AbortController() : null;
    this.sendButton.textContent = this.stopper ? "Stop" : "Send";
    this.sendButton.setAttribute("aria-label", this.stopper ? "Stop the answer" : "Send");
    this.sendButton.disabled = !this.stopper;
    this.suggest.textContent = "";
    this.bubble("user", text);
    this.userMessages += 1;
    emit("message", { role: "user", content: text });
    var answer = el("div", { class: "cw-msg cw-assistant", "data-role": "assistant", "aria-busy": "true" }, [el("span", { class: "cw-typing", "aria-label": "The assistant is typing" })]);
    this.log.appendChild(answer);
    this.scroll();
    return this.readImage().then(function (image) {
      var body = { bot_id: BOT, message: text, session_id: self.session, page_url: location.origin + location.pathname };
      if (self.conversation) body.conversation_id = self.conversation;
      if (image) { body.image_data = image.data; body.image_media_type = image.type; }
      return fetch(API + "/v1/public/chat/stream", {
        method: "POST", headers: { "Content-Type": "application/json", Accept: "text/event-stream" }, body: JSON.stringify(body),
        signal: self.stopper ? self.stopper.signal : undefined
      });
    }).then(function (response) {
      if (self.file) { self.file.value = ""; self.attachLabel.setAttribute("aria-pressed", "false"); }
      if (!response.ok) {
        return response.json().catch(function () { return {}; }).then(function (err) {
          answer.remove();
          if (response.status === 429) self.system(self.config.warning_message || err.message || "Too many messages. Please wait a moment.", true);
          else if (response.status === 404 && self.conversation) { self.forget(); self.system("The earlier conversation has ended. Please ask again.", true); }
          else self.system(err.message || "The message could not be sent.", true);
        });
      }
      return self.readStream(response, answer);
    }).catch(function (err) {
      answer.removeAttribute("aria-busy");
      if (err && err.name === "AbortError") { // stopped by the visitor: what came so far stays
        if (!answer.textContent) answer.remove();
        self.system("Stopped.");
        return;
      }
      answer.remove();
      self.system(err && err.message ? err.message : "The message could not be sent.", true);
    }).then(function () {
      self.busy = false;
      self.stopper = null;
      self.sendButton.textContent = "Send";
      self.sendButton.setAttribute("aria-label", "Send");
      self.sendButton.disabled = false;
      self.maybeOfferLead();
    });
  };

  Widget.prototype.readStream = function (response, node) {
    var self = this, text = "", citations = null;
    function render() { self.fill(node, "assistant", text, null, null); self.scroll(); }
    function handle(event) {
      if (event.type === "content") { text += event.content; render(); }
      else if (event.type === "replace") { text = event.content; render(); }
      else if (event.type === "notice") self.notice(event);
      else if (event.type === "error") {
        node.removeAttribute("aria-busy");
        if (!text) node.remove();
        self.system(event.message || "Something went wrong.", true);
      } else if (event.type === "done") {
        node.removeAttribute("aria-busy");
        if (event.conversation_id) self.remember(event.conversation_id);
        citations = cites(event.citations);
        if (event.assistant_message_id) {
          node.setAttribute("data-id", event.assistant_message_id);
          self.lastId = event.assistant_message_id;
          self.fill(node, "assistant", text, citations, event.assistant_message_id);
          emit("message", { role: "assistant", content: text, id: event.assistant_message_id, citations: event.citations || [] });
        } else if (!text) node.remove();
        self.scroll();
      }
    }
    return readEvents(response, function (name, event) { handle(event); });
  };

  Widget.prototype.notice = function (event) {
    if (event.code === "handoff_requested" || event.code === "human_agent") {
      if (event.code === "handoff_requested") this.system(event.message);
      this.held("pending_human");
    } else if (event.code === "handoff_offline") {
      this.system(event.message);
      if (this.config.contact_form_enabled) this.showLead();
    } else if (event.level === "warning") this.system(event.message, true);
  };

  Widget.prototype.remember = function (conversationId) {
    this.conversation = conversationId;
    store.setItem(key("conversation"), conversationId);
    this.held(this.status); // a handoff on the first message came before its conversation id
  };
  Widget.prototype.forget = function () {
    this.conversation = null;
    store.removeItem(key("conversation"));
    this.unfollow();
  };

  // The conversation's messages ("messages") or their event stream ("events") after the last one shown.
  Widget.prototype.url = function (what) {
    return API + "/v1/public/conversations/" + encodeURIComponent(this.conversation) + "/" + what + "?session_id=" +
      encodeURIComponent(this.session) + (this.lastId ? "&after=" + encodeURIComponent(this.lastId) : "");
  };
  Widget.prototype.history = function () {
    return fetch(this.url("messages")).then(function (r) { return r.json().then(function (body) { return { ok: r.ok, status: r.status, body: body }; }); });
  };

  Widget.prototype.restore = function () {
    var self = this;
    return this.history().then(function (res) {
      if (!res.ok) { if (res.status === 404) self.forget(); self.welcome(); return; }
      if (self.config.welcome_message) self.bubble("assistant", self.config.welcome_message, null, null);
      res.body.messages.forEach(function (m) { self.show(m); });
      self.held(res.body.conversation_status);
    });
  };

  Widget.prototype.show = function (m) {
    var citations = cites(m.citations);
    if (m.role === "user") this.userMessages += 1;
    if (m.role === "user" || m.role === "assistant" || m.role === "agent") this.bubble(m.role, m.content, m.role === "user" ? null : m.id, citations, m.feedback);
    this.lastId = m.id;
  };

  Widget.prototype.held = function (status) {
    this.status = status;
    // Said for as long as it holds (also after a reload), not once in the log.
    var line = status === "pending_human" ? "Waiting for a person from the team: they will reply here." :
      status === "human" ? "You are chatting with " + (this.config.handoff_agent_label || "the support team") + "." : "";
    if (this.statusLine) { this.statusLine.textContent = line; this.statusLine.hidden = !line; }
    var human = this.bar && this.bar.querySelector(".cw-human");
    if (human) human.hidden = !!line; // already with (or waiting for) a person
    if (status === "pending_human" || status === "human") this.follow();
    else this.unfollow();
  };
  // What arrives while a person holds the chat (pushed or polled): agent messages and status changes.
  Widget.prototype.absorb = function (messages, status) {
    var self = this;
    messages.forEach(function (m) {
      if (self.log.querySelector("[data-id='" + m.id + "']")) { self.lastId = m.id; return; }
      if (m.role === "agent") { self.show(m); emit("message", { role: "agent", content: m.content, id: m.id }); }
      else self.lastId = m.id;
    });
    if (status && status !== this.status) {
      if (status === "resolved") this.system("The conversation with the team has ended.");
      this.held(status);
    }
  };
  // Agent replies are pushed on the conversation's event stream; it is polled only while the stream is down.
  Widget.prototype.follow = function () {
    var self = this, stream;
    if (this.stream || !this.conversation) return;
    if (!window.AbortController || !window.ReadableStream) return this.startPolling();
    stream = this.stream = new AbortController();
    function again(ms) { setTimeout(function () { if (self.stream === stream) { self.stream = null; self.held(self.status); } }, ms); }
    fetch(this.url("events"), { headers: { Accept: "text/event-stream" }, signal: stream.signal }).then(function (r) {
      if (!r.ok) throw new Error("event stream: " + r.status);
      self.stopPolling();
      return readEvents(r, function (name, data) {
        if (self.stream !== stream) return;
        if (name === "message") { self.agentTyping(false); self.absorb([data]); }
        else if (name === "typing") self.agentTyping(true);
        else if (name === "status") self.absorb([], data.conversation_status);
      });
    }).then(function () { again(1000); }, function () { // ended (its lifetime): reconnect; failed: poll meanwhile
      if (self.stream !== stream) return;
      self.startPolling();
      again(STREAM_RETRY_MS);
    });
  };
  Widget.prototype.unfollow = function () {
    if (this.stream) { this.stream.abort(); this.stream = null; }
    this.stopPolling();
  };
  Widget.prototype.startPolling = function () {
    var self = this;
    if (this.pollTimer || !this.conversation) return;
    this.pollTimer = setInterval(function () {
      self.history().then(function (res) { if (res.ok) self.absorb(res.body.messages, res.body.conversation_status); });
    }, POLL_MS);
  };
  Widget.prototype.stopPolling = function () { if (this.pollTimer) { clearInterval(this.pollTimer); this.pollTimer = null; } };

  // While a person holds the chat: the agent sees that the visitor types (at most every 3 s) ...
  Widget.prototype.typing = function () {
    var now = Date.now();
    if (!this.conversation || (this.status !== "pending_human" && this.status !== "human") || now - (this.typedAt || 0) < 3000) return;
    this.typedAt = now;
    fetch(API + "/v1/public/conversations/" + encodeURIComponent(this.conversation) + "/typing", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ session_id: this.session })
    }).catch(function () {});
  };
  // ... and the visitor sees that the agent types.
  Widget.prototype.agentTyping = function (on) {
    var self = this;
    if (this.typingNode) { this.typingNode.remove(); this.typingNode = null; }
    clearTimeout(this.typingTimer);
    if (!on) return;
    this.typingNode = el("div", { class: "cw-msg cw-system cw-agent-typing", text: (this.config.handoff_agent_label || "Support team") + " is typing…" });
    this.log.appendChild(this.typingNode);
    this.scroll();
    this.typingTimer = setTimeout(function () { self.agentTyping(false); }, 6000);
  };

  Widget.prototype.handoff = function () {
    var self = this;
    this.open();
    // No conversation yet: the request itself opens one (and is handed off, or told nobody is online).
    if (!this.conversation) return this.send("I'd like to talk to a person.");
    return fetch(API + "/v1/public/conversations/" + encodeURIComponent(this.conversation) + "/handoff", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ session_id: this.session })
    }).then(function (r) { return r.json(); }).then(function (res) {
      emit("handoff", res);
      if (res.handoff_available) { self.system("A person from the team will reply here shortly."); self.held(res.conversation_status); }
      else { self.system(res.message || "Nobody is available right now."); if (self.config.contact_form_enabled) self.showLead(); }
    });
  };

  Widget.prototype.maybeOfferLead = function () {
    var c = this.config;
    if (c.contact_form_enabled && c.contact_form_trigger === "after_messages" && !this.leadShown &&
        this.userMessages >= (c.contact_form_after_messages || 3)) this.showLead({ quiet: true });
  };

  // The contact form goes below the newest message (never over an answer). Offered by itself
  // (after some messages: ``quiet``) it takes no focus; asked for, it does.
  Widget.prototype.showLead = function (options) {
    var self = this, c = this.config, quiet = options && options.quiet;
    if (this.leadForm && this.leadForm.isConnected) {
      this.log.appendChild(this.leadForm);
      this.scroll();
      if (!quiet) this.leadForm.querySelector("input,textarea").focus();
      return;
    }
    this.leadShown = true;
    var fields = c.contact_form_fields && c.contact_form_fields.length ? c.contact_form_fields :
      [{ name: "name", label: "Name", type: "text", required: false }, { name: "email", label: "Email", type: "email", required: true }];
    var inputs = {};
    var form = el("form", { class: "cw-lead", "aria-label": "Leave your contact details" });
    fields.forEach(function (f) {
      var input = f.type === "textarea" ? el("textarea", { name: f.name, rows: "2", required: f.required, maxlength: "2000" }) :
        el("input", { name: f.name, type: f.type === "phone" ? "tel" : (f.type || "text"), required: f.required, maxlength: "320",
          autocomplete: f.name === "email" ? "email" : f.name === "phone" ? "tel" : f.name === "name" ? "name" : "off" });
      if (self.identity[f.name]) input.value = self.identity[f.name];
      inputs[f.name] = input;
      form.appendChild(el("label", {}, [el("span", { text: f.label + (f.required ? " *" : "") }), input]));
    });
    var status = el("div", { role: "status", class: "cw-system" });
    form.appendChild(status);
    form.appendChild(el("div", { class: "cw-row" }, [
      el("button", { type: "button", class: "cw-secondary", text: "Not now", onclick: function () { form.remove(); } }),
      el("button", { type: "submit", text: "Send details" })]));
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var body = { bot_id: BOT, session_id: self.session, fields: {} };
      if (self.conversation) body.conversation_id = self.conversation;
      Object.keys(inputs).forEach(function (name) {
        var value = inputs[name].value.trim();
        if (!value) return;
        if (name === "name" || name === "email" || name === "phone") body[name] = value;
        else body.fields[name] = value;
      });
      fetch(API + "/v1/public/leads", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
        .then(function (r) { return r.json().then(function (res) { return { ok: r.ok, body: res }; }); })
        .then(function (res) {
          if (!res.ok) { status.textContent = res.body.message || "Please check your details."; return; }
          form.remove();
          self.system(c.contact_form_success_message || "Thanks! We will get back to you.");
          emit("lead", { id: res.body.id });
        })
        .catch(function () { status.textContent = "Your details could not be sent. Please try again."; });
    });
    this.leadForm = form;
    this.log.appendChild(form);
    if (!quiet) this.open();
    this.scroll();
    var first = form.querySelector("input,textarea");
    if (first && !quiet) first.focus();
  };

  // ---------------------------------------------------------------- mount and the control API
  var widget = null;
  var queued = [];
  function mount() {
    var host = document.createElement("chatwell-widget");
    var mode = MODE;
    if (mode === "inline") {
      var target = document.querySelector(script.getAttribute("data-target") || "#chatwell");
      if (!target) { console.warn("chatwell: inline target not found"); return; }
      target.appendChild(host);
    } else {
      if (mode === "page") host.style.display = "block";
      document.body.appendChild(host);
    }
    widget = new Widget(host, mode);
    widget.start().then(function () {
      if (widget.panel && mode === "page") widget.open();
      queued.splice(0).forEach(function (call) { call(); });
    });
  }
  function later(fn) { return function () { var args = arguments; if (widget && widget.panel) return fn.apply(null, args); queued.push(function () { fn.apply(null, args); }); }; }

  window.chatwell = {
    __loaded: true,
    open: later(function () { widget.open(); }),
    close: later(function () { widget.close(); }),
    toggle: later(function () { widget.toggle(); }),
    send: later(function (text) { return widget.send(text); }),
    identify: function (details) {
      if (widget) Object.assign(widget.identity, details || {});
      else queued.push(function () { Object.assign(widget.identity, details || {}); });
    },
    on: function (name, fn) { (listeners[name] = listeners[name] || []).push(fn); },
    off: function (name, fn) { listeners[name] = (listeners[name] || []).filter(function (f) { return f !== fn; }); }
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount);
  else mount();
})();
