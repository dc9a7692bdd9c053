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
export function textOn(hex) { return contrast(hex, "#ffffff") >= 4.5 || contrast(hex, "#ffffff") >= contrast(hex, "#111827") ? "#ffffff" : "#111827"; }
export function readableOnWhite(hex) {
  var rgb = [1, 3, 5].map(function (i) { return parseInt(hex.substr(i, 2), 16); }), out = hex, k = 1;
  while (contrast(out, "#ffffff") < 4.5 && k > 0) {
    k -= 0.05;
    out = "#" + rgb.map(function (v) { var h = Math.round(v * Math.max(k, 0)).toString(16); return h.length < 2 ? "0" + h : h; }).join("");
  }
  return out;
}
