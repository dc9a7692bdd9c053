// The answers' safe Markdown subset, rendered into DOM nodes.
import { el } from "./dom.js";
import { safeLink } from "./links.js";

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
export function markdown(text, citations) {
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
