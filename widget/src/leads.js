// The contact form (a lead): offered after some messages, asked for, or when nobody can take over.
import { API, BOT } from "./env.js";
import { emit } from "./events.js";
import { el } from "./dom.js";
import { Widget } from "./widget.js";

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
