// The chat panel: rendering, sending a message and reading its streamed answer, feedback.
import { API, BOT, key, store, uuid } from "./env.js";
import { emit } from "./events.js";
import { readEvents } from "./sse.js";
import { readableOnWhite, textOn } from "./colors.js";
import { el, icon } from "./dom.js";
import { cites, safeLink, safeUrl } from "./links.js";
import { markdown } from "./markdown.js";
import { CSS } from "./styles.js";

export function Widget(host, mode) {
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
