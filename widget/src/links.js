// Which URLs become links or images: plain absolute http(s) only, as the server's link guard.
export function safeUrl(href) { // an image of the bot's own settings (its avatar): http(s), maybe relative
  try {
    var url = new URL(href, location.href);
    return /^https?:$/.test(url.protocol) ? url.href : null;
  } catch (e) { return null; }
}
// A link the visitor can follow: only an absolute http(s) URL written plainly, as the server's
// link guard lets through. Anything a browser would bend into one (//host, https:/\host,
// controls, spaces or backslashes inside, user:pass@) and every other scheme stays text.
var PLAIN_LINK = /^https?:\/\/[a-z0-9\[]/i;
export function safeLink(href) {
  if (typeof href !== "string" || !PLAIN_LINK.test(href) || /[\u0000-\u0020\u007f-\u009f\\]/.test(href)) return null;
  try {
    var url = new URL(href);
    if (!/^https?:$/.test(url.protocol) || !url.hostname || url.username || url.password) return null;
    return url.href;
  } catch (e) { return null; }
}

export function cites(list) {
  return (list || []).map(function (c, i) { return { index: c.index || i + 1, title: c.page_title, url: c.source_url }; });
}
