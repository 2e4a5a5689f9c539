// Live updates for the taskfiles status page. No framework, no build step.
// One EventSource per page; on a relevant "change" the page refetches its live
// part (the same URL with X-Fragment: live) and swaps it in. Ages tick locally.
// A task page also follows its log: a second EventSource on the log stream, filtered
// by the server as the page is, appends each new line (as text, never as HTML).
(function () {
  "use strict";
  var body = document.body;
  var page = body.getAttribute("data-page");
  var slug = body.getAttribute("data-slug");
  var conn = document.getElementById("conn");
  var busy = false;
  var again = false;
  var source = null;
  var seen = null; // the server instance last greeted: a new one means a restart
  var logSource = null; // the log stream, while the attempt shown can still log
  var logKey = null; // which log it follows: attempt, level and source

  function setConn(state, text) {
    if (!conn) return;
    conn.className = "conn " + state;
    conn.textContent = text;
  }

  function relevant(change) {
    // Log lines come from the log stream (followLog): a change of logs alone is no news.
    var scopes = change.scopes || [];
    return scopes.some(function (s) { return s !== "logs"; });
  }

  function logAtBottom() {
    var log = document.getElementById("log");
    return !log || log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  }

  function refresh() {
    var live = document.getElementById("live");
    if (!live) return;
    if (busy) { again = true; return; }
    busy = true;
    var stick = logAtBottom();
    fetch(window.location.href, {
      headers: { "X-Fragment": "live" },
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (response) {
      if (!response.ok && response.status !== 404 && response.status !== 409) return null;
      return response.text();
    }).then(function (html) {
      if (html === null) return;
      var streamed = document.getElementById("log");
      live.innerHTML = html; // server-rendered, escaped; inserted scripts never run
      var log = keepStreamed(streamed, document.getElementById("log"));
      if (log && stick) log.scrollTop = log.scrollHeight;
      followLog();
      tick();
      body.setAttribute("data-refreshed", String(Date.now()));
    }).catch(function () { /* the next change or reconnect retries */ })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  function connect() {
    if (!window.EventSource) return;
    source = new EventSource("/api/events");
    source.addEventListener("hello", function (e) {
      var data = JSON.parse(e.data);
      setConn("live", "live");
      if (seen !== null) refresh(); // reconnected: catch up on what was missed
      seen = data.instance;
    });
    source.addEventListener("change", function (e) {
      if (relevant(JSON.parse(e.data))) refresh();
    });
    source.addEventListener("resync", refresh);
    source.onerror = function () {
      setConn("down", "reconnecting");
      if (source.readyState === EventSource.CLOSED) {
        // The server refused the stream (e.g. it restarted without our login): try again later.
        window.setTimeout(connect, 3000);
      }
    };
  }

  function logKeyOf(log) {
    if (!log) return null;
    return [log.getAttribute("data-attempt"), log.getAttribute("data-level"), log.getAttribute("data-source")].join("|");
  }

  // The fragment's log was read when it was rendered; the streamed one may have more lines.
  function keepStreamed(streamed, fresh) {
    if (!streamed || !fresh || logKeyOf(streamed) !== logKeyOf(fresh)) return fresh;
    if (Number(streamed.getAttribute("data-last")) <= Number(fresh.getAttribute("data-last"))) return fresh;
    fresh.parentNode.replaceChild(streamed, fresh);
    shown(streamed);
    return streamed;
  }

  function shown(log) {
    if (!log.children.length) return;
    log.hidden = false;
    var empty = document.getElementById("log-empty");
    if (empty) empty.parentNode.removeChild(empty);
  }

  function span(cls, text) {
    var node = document.createElement("span");
    node.className = cls;
    node.textContent = text;
    return node;
  }

  function shortTime(stamp) { // as the server's |time filter: 2025-03-01 12:00:00Z
    return typeof stamp === "string" && stamp.length >= 19 ? stamp.slice(0, 10) + " " + stamp.slice(11, 19) + "Z" : String(stamp);
  }

  function appendLine(data) {
    var log = document.getElementById("log");
    if (!log || String(data.attempt) !== log.getAttribute("data-attempt")) return;
    if (data.position <= Number(log.getAttribute("data-last"))) return; // already shown
    var stick = logAtBottom();
    var line = document.createElement("div");
    line.className = "line lv-" + String(data.level).replace(/[^a-z]/g, "");
    line.appendChild(span("t", shortTime(data.time)));
    line.appendChild(document.createTextNode(" "));
    line.appendChild(span("lv", data.level));
    line.appendChild(document.createTextNode(" "));
    line.appendChild(span("src", data.source));
    line.appendChild(document.createTextNode(" "));
    line.appendChild(span("msg", data.message));
    var fields = data.fields || {};
    Object.keys(fields).forEach(function (name) {
      var field = span("field", "=" + fields[name]);
      var key = document.createElement("b");
      key.textContent = name;
      field.insertBefore(key, field.firstChild);
      line.appendChild(document.createTextNode(" "));
      line.appendChild(field);
    });
    log.appendChild(line);
    log.setAttribute("data-last", String(data.position));
    shown(log);
    if (stick) log.scrollTop = log.scrollHeight;
  }

  // Follow the log the page shows, from the last line it has; once the attempt ends
  // ("end"), or the page shows another log, that stream is closed.
  function followLog() {
    var log = document.getElementById("log");
    var key = logKeyOf(log);
    if (key === logKey) return;
    if (logSource) logSource.close();
    logSource = null;
    logKey = key;
    if (!log || !window.EventSource) return;
    var query = new URLSearchParams({
      attempt: log.getAttribute("data-attempt"),
      level: log.getAttribute("data-level"),
      source: log.getAttribute("data-source"),
      after: log.getAttribute("data-last")
    });
    var stream = new EventSource("/api/tasks/" + encodeURIComponent(slug) + "/logs/stream?" + query.toString());
    stream.addEventListener("log", function (e) { appendLine(JSON.parse(e.data)); });
    stream.addEventListener("end", function () {
      stream.close(); // else EventSource reconnects; the key stays, so it is not reopened
      if (logSource === stream) logSource = null;
      body.setAttribute("data-log-ended", "1");
    });
    logSource = stream;
  }

  function human(seconds) {
    seconds = Math.max(0, seconds);
    if (seconds >= 86400) return Math.floor(seconds / 86400) + " d";
    if (seconds >= 3600) return Math.floor(seconds / 3600) + " h";
    if (seconds >= 60) return Math.floor(seconds / 60) + " min";
    return Math.floor(seconds) + " s";
  }

  // Ages move with the clock: recompute them every second from their timestamps.
  function tick() {
    var now = Date.now();
    var nodes = document.querySelectorAll("[data-since]");
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      var since = Date.parse(node.getAttribute("data-since"));
      if (isNaN(since)) continue;
      var age = (now - since) / 1000;
      var text = human(age);
      if (node.classList.contains("age")) {
        var late = parseFloat(node.getAttribute("data-late"));
        var stale = parseFloat(node.getAttribute("data-stale"));
        node.classList.remove("fresh", "late", "stale", "unknown");
        node.classList.add(age >= stale ? "stale" : age >= late ? "late" : "fresh");
      } else {
        text += " ago";
      }
      if (node.textContent !== text) node.textContent = text;
    }
  }

  var log = document.getElementById("log");
  if (log) log.scrollTop = log.scrollHeight;
  connect();
  if (page === "task") followLog();
  window.setInterval(tick, 1000);
  // Stall signals and the cycle warning change with time alone: refresh now and then.
  window.setInterval(function () { if (!document.hidden) refresh(); }, 30000);
})();
