// The page's listeners: window.chatwell.on / off, and a "chatwell:NAME" window event for each.
var listeners = {};

export function emit(name, detail) {
  (listeners[name] || []).slice().forEach(function (fn) { try { fn(detail); } catch (e) { console.error(e); } });
  try { window.dispatchEvent(new CustomEvent("chatwell:" + name, { detail: detail })); } catch (e) { /* old browsers */ }
}
export function on(name, fn) { (listeners[name] = listeners[name] || []).push(fn); }
export function off(name, fn) { listeners[name] = (listeners[name] || []).filter(function (f) { return f !== fn; }); }
