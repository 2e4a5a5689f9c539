// Live updates for the taskfiles status page. No framework, no build step.
// One EventSource per page; on a relevant "change" the page refetches its live
// part (the same URL with X-Fragment: live) and swaps it in. Ages tick locally.
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

  function setConn(state, text) {
    if (!conn) return;
    conn.className = "conn " + state;
    conn.textContent = text;
  }

  function relevant(change) {
    var scopes = change.scopes || [];
    var slugs = change.slugs || [];
    var other = scopes.filter(function (s) { return s !== "logs"; });
    // A log change without slugs: a new logs/ folder whose contents the watcher may have missed.
    var someLog = scopes.indexOf("logs") !== -1 && slugs.length === 0;
    if (page === "task") return other.length > 0 || someLog || slugs.indexOf(slug) !== -1;
    return other.length > 0;
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
      live.innerHTML = html; // server-rendered, escaped; inserted scripts never run
      var log = document.getElementById("log");
      if (log && stick) log.scrollTop = log.scrollHeight;
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
  window.setInterval(tick, 1000);
  // Stall signals and the cycle warning change with time alone: refresh now and then.
  window.setInterval(function () { if (!document.hidden) refresh(); }, 30000);
})();
