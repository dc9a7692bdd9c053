// A stored conversation: restored after a reload, and followed while a person holds it.
import { API, POLL_MS, STREAM_RETRY_MS } from "./env.js";
import { emit } from "./events.js";
import { readEvents } from "./sse.js";
import { el } from "./dom.js";
import { cites } from "./links.js";
import { Widget } from "./widget.js";

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
