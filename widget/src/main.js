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
import { configure, MODE } from "./env.js";
import { off, on } from "./events.js";
import { Widget } from "./widget.js";
import "./conversation.js";
import "./leads.js";

function boot() {
  if (window.chatwell && window.chatwell.__loaded) return;
  var script = document.currentScript || document.querySelector("script[src*='widget.js'][data-bot-id]");
  if (!script) return;
  configure(script);

  // The widget mounts once the page has a body; window.chatwell queues calls made before it is ready.
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
    on: on,
    off: off
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount);
  else mount();
}

boot();
