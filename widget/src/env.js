// What the embedding <script> tag says (the bot, the mode, the server), set once by configure(),
// and the visitor's storage: localStorage, or memory where a page forbids it.
export var BOT, MODE, API, POLL_MS, store;
export var STREAM_RETRY_MS = 30000;

export function configure(script) {
  BOT = script.getAttribute("data-bot-id");
  MODE = script.getAttribute("data-mode") || "bubble";
  API = new URL(script.src, location.href).origin;
  POLL_MS = Number(script.getAttribute("data-poll-ms")) || 3000;
  store = storage();
}

function storage() {
  try { localStorage.setItem("chatwell:probe", "1"); localStorage.removeItem("chatwell:probe"); return localStorage; }
  catch (e) { var mem = {}; return { getItem: function (k) { return mem[k] || null; }, setItem: function (k, v) { mem[k] = String(v); }, removeItem: function (k) { delete mem[k]; } }; }
}
export function key(name) { return "chatwell:" + BOT + ":" + name; }
export function uuid() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return "s-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
}
