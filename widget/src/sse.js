// Server-sent events of a fetch response: onFrame(event, data) for each frame with JSON data.
export function readEvents(response, onFrame) {
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
