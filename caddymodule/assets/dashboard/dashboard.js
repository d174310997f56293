// scrapegate /dashboard: a live view over the status WebSocket (ws_status).
// The token stays in this browser (session storage, or local storage when
// "remember" is ticked); every value from the server is shown as text,
// never as HTML.
(function () {
  "use strict";

  var KEY = "scrapegate.token";
  var HISTORY = 600; // seconds of history kept
  var WINDOW = 600; // seconds shown in the chart (1, 5 or 10 minutes)
  var MAX_TASKS = 50;
  var SUBPROTOCOL = "scrapegate.v1";
  var TOKEN_PREFIX = "bearer.";

  var cfg = {
    ws: document.body.getAttribute("data-ws-url"),
    status: document.body.getAttribute("data-status-url"),
    scrape: document.body.getAttribute("data-scrape-url")
  };
  var $ = function (id) { return document.getElementById(id); };

  // ---- token storage: only in this browser -------------------------------
  function loadToken() {
    try { return sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || ""; } catch (e) { return ""; }
  }
  function saveToken(t, remember) {
    try {
      sessionStorage.removeItem(KEY); localStorage.removeItem(KEY);
      if (t) { (remember ? localStorage : sessionStorage).setItem(KEY, t); }
    } catch (e) { /* storage disabled: the token lives in memory only */ }
  }
  function isJWT(t) { return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(t); }
  function authHeaders(t) {
    return isJWT(t) ? { "Authorization": "Bearer " + t } : { "X-API-Key": t };
  }

  // ---- formatting ----------------------------------------------------------
  function fmtDuration(s) {
    s = Math.max(0, Math.floor(s));
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), sec = s % 60;
    if (d) { return d + "d " + h + "h"; }
    if (h) { return h + "h " + (m < 10 ? "0" : "") + m + "m"; }
    if (m) { return m + "m " + (sec < 10 ? "0" : "") + sec + "s"; }
    return sec + "s";
  }
  function fmtBytes(b) {
    if (!b) { return "0 B"; }
    var u = ["B", "KB", "MB", "GB", "TB"], i = Math.min(u.length - 1, Math.floor(Math.log(b) / Math.log(1024)));
    return (b / Math.pow(1024, i)).toFixed(i ? 1 : 0) + " " + u[i];
  }
  function fmtMs(v) {
    if (v === undefined || v === null) { return "–"; }
    return v >= 1000 ? (v / 1000).toFixed(2) + " s" : (v >= 10 ? v.toFixed(0) : v.toFixed(1)) + " ms";
  }
  function ago(ts) {
    if (!ts) { return "–"; }
    var s = (Date.now() - new Date(ts).getTime()) / 1000;
    return s < 1 ? "just now" : fmtDuration(s) + " ago";
  }
  function text(el, v) { el.textContent = v; return el; }
  function el(tag, cls, content) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (content !== undefined) { e.textContent = content; }
    return e;
  }
  function badge(state, label) { return el("span", "badge s-" + state, label || state); }

  // ---- connection state ------------------------------------------------------
  var token = loadToken();
  var ws = null;
  var retry = 0;
  var retryTimer = null;
  var opened = false;

  function setConn(cls, label) {
    var c = $("conn");
    c.className = "pill " + cls;
    c.textContent = label;
  }
  function notice(msg) { $("notice").textContent = msg; }

  function showLogin(err) {
    $("main").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = err || "";
    setConn("pill-off", "Not connected");
    $("token").focus();
  }
  function showMain() {
    $("login").hidden = true;
    $("main").hidden = false;
  }

  // While the WebSocket is down, poll GET status so the page stays current
  // (task events need the socket).
  var pollTimer = null;
  function startPolling() {
    if (pollTimer) { return; }
    pollTimer = setInterval(function () {
      check().then(onStatus, function (err) {
        if (err && err.auth) { disconnect(); saveToken("", false); token = ""; showLogin(err.message); }
      });
    }, 5000);
  }
  function stopPolling() {
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
  }

  function disconnect() {
    stopPolling();
    if (retryTimer) { clearTimeout(retryTimer); retryTimer = null; }
    if (ws) { ws.onclose = null; ws.close(1000, "bye"); ws = null; }
  }

  // check asks GET status with the token: 401/403 mean a bad token, and an
  // answer is the first snapshot, with the last minutes of the series.
  function check() {
    return fetch(cfg.status, { headers: authHeaders(token), cache: "no-store" }).then(function (r) {
      if (r.status === 401 || r.status === 403) {
        return r.json().catch(function () { return {}; }).then(function (b) {
          throw { auth: true, message: "The gateway refused this token" + (b && b.code ? " (" + b.code + ")" : "") + "." };
        });
      }
      if (!r.ok) { throw { message: "GET " + cfg.status + " answered " + r.status + "." }; }
      return r.json();
    });
  }

  function connect() {
    disconnect();
    showMain();
    setConn("pill-wait", "Connecting…");
    check().then(function (status) {
      onStatus(status);
      openSocket();
    }, function (err) {
      if (err && err.auth) { saveToken("", false); token = ""; showLogin(err.message); return; }
      notice((err && err.message) || "The gateway did not answer; retrying.");
      openSocket();
    });
  }

  function socketURL() {
    var u = new URL(cfg.ws, location.href);
    if (u.protocol === "http:") { u.protocol = "ws:"; } else if (u.protocol === "https:") { u.protocol = "wss:"; }
    return u;
  }

  function openSocket() {
    var u = socketURL();
    var protocols = [SUBPROTOCOL];
    // A subprotocol is an HTTP token; a token that cannot be one goes in the query.
    if (/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(token)) {
      protocols.push(TOKEN_PREFIX + token);
    } else {
      u.searchParams.set("token", token);
    }
    opened = false;
    try {
      ws = new WebSocket(u.toString(), protocols);
    } catch (e) {
      notice("Cannot open the WebSocket: " + e.message);
      return scheduleRetry();
    }
    ws.onopen = function () {
      opened = true;
      retry = 0;
      stopPolling();
      setConn("pill-on", "Live");
      notice("");
    };
    ws.onmessage = function (ev) {
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      onMessage(m);
    };
    ws.onclose = function (ev) {
      ws = null;
      if (!opened) {
        // refused before it opened: maybe the token expired; check() says
        check().then(function (status) {
          onStatus(status);
          notice(isJWT(token)
            ? "The WebSocket is unavailable: showing GET status every 5 s until it reconnects."
            : "The WebSocket refused this API key (it may take JWTs only): showing GET status every 5 s; task events need a JWT.");
          startPolling();
          scheduleRetry();
        }, function (err) {
          if (err && err.auth) { disconnect(); saveToken("", false); token = ""; showLogin(err.message); } else { scheduleRetry(); }
        });
        return;
      }
      startPolling();
      scheduleRetry(ev.code);
    };
  }

  function scheduleRetry(code) {
    var delay = Math.min(30, Math.pow(2, retry++));
    setConn("pill-bad", "Disconnected" + (code ? " (" + code + ")" : "") + ", retrying in " + delay + " s");
    retryTimer = setTimeout(function () { retryTimer = null; openSocket(); }, delay * 1000);
  }

  function onMessage(m) {
    if (!m || typeof m.type !== "string") { return; }
    if (m.type === "status") { onStatus(m.data || {}); return; }
    if (m.type === "subscribed") {
      var d = m.data || {};
      text($("client-id"), d.client_id || "?");
      $("admin").hidden = !d.admin;
      return;
    }
    if (m.type === "error") {
      var e = m.data || {};
      notice("Server: " + (e.error || "error") + (e.code ? " (" + e.code + ")" : "") + (e.detail ? ": " + e.detail : ""));
      return;
    }
    if (m.type.indexOf("task.") === 0) { onTaskEvent(m); }
  }

  // ---- status snapshot -----------------------------------------------------
  var lastStatus = null;

  function onStatus(s) {
    lastStatus = s;
    var ok = s.status === "ok";
    var gw = $("gw-status");
    gw.className = "badge " + (ok ? "s-ok" : "s-bad");
    gw.textContent = ok ? "ok" : (s.status || "unknown");
    text($("gw-uptime"), fmtDuration(s.uptime_seconds || 0));
    text($("gw-cpu"), (s.cpu_percent || 0).toFixed(1) + " %");
    text($("gw-mem"), fmtBytes(s.memory_rss_bytes || 0));
    text($("gw-ws"), String(s.websocket_clients || 0));

    var b = s.broker || {};
    var br = $("br-status");
    br.className = "badge " + (b.connected ? "s-ok" : "s-bad");
    br.textContent = b.connected ? "connected" : "down";
    text($("br-name"), b.connection_name || "–");
    text($("br-reconnects"), String(b.reconnects || 0));

    text($("q-length"), String(s.queue_length || 0));
    var pools = $("q-pools");
    pools.textContent = "";
    (s.queues || []).forEach(function (q) {
      var li = el("li", null, q.pool + ": " + q.messages + " waiting, " + q.consumers + " consumer" + (q.consumers === 1 ? "" : "s"));
      if (q.stale) { li.appendChild(el("span", "badge s-warn", "stale")); }
      pools.appendChild(li);
    });

    var c = s.calls || {}, lat = c.latency_ms || {};
    text($("c-inflight"), String(s.in_flight || 0));
    text($("c-completed"), String(c.completed || 0));
    text($("c-failed"), String(c.failed || 0));
    text($("c-latency"), fmtMs(lat.p50) + " / " + fmtMs(lat.p99));

    renderWorkers(s.workers || []);
    if (s.series) { addSeries(s.series); }
    renderChart();
  }

  function renderWorkers(workers) {
    var tbody = $("workers").tBodies[0];
    tbody.textContent = "";
    var live = 0;
    workers.forEach(function (w) { if (w.live) { live++; } });
    text($("w-count"), "(" + live + " live of " + workers.length + ")");
    if (!workers.length) {
      var tr = el("tr", "empty"), td = el("td", null, "No worker has been heard from.");
      td.colSpan = 6; tr.appendChild(td); tbody.appendChild(tr);
      return;
    }
    workers.slice().sort(function (a, b) { return (b.live - a.live) || String(a.worker_id).localeCompare(b.worker_id); }).forEach(function (w) {
      var tr = el("tr");
      tr.setAttribute("data-worker", w.worker_id);
      tr.appendChild(el("td", "mono", w.worker_id));
      tr.appendChild(el("td", null, w.pool));
      var st = el("td"); st.appendChild(badge(w.live ? "live" : "dead", w.live ? "live" : "silent")); tr.appendChild(st);
      tr.appendChild(el("td", null, w.in_flight + " / " + w.capacity));
      var sc = el("td");
      (w.scripts || []).forEach(function (s, i) {
        if (i) { sc.appendChild(document.createTextNode(", ")); }
        var code = el("code", null, s.name);
        sc.appendChild(code);
        if (s.versions && s.versions.length) { sc.appendChild(document.createTextNode(" " + s.versions.join(" "))); }
      });
      tr.appendChild(sc);
      tr.appendChild(el("td", "age", ago(w.last_heartbeat)));
      tr.lastChild.setAttribute("data-ts", w.last_heartbeat || "");
      tbody.appendChild(tr);
    });
  }

  // ---- chart: calls per second and latency ------------------------------------
  var points = {}; // unix second -> {calls, failed, p50, p99}

  function addSeries(se) {
    var iv = se.interval_seconds || 1;
    var n = (se.calls || []).length;
    for (var i = 0; i < n; i++) {
      points[se.start + i * iv] = {
        calls: se.calls[i] / iv, failed: (se.failed ? se.failed[i] : 0) / iv,
        p50: se.latency_p50_ms ? se.latency_p50_ms[i] : 0, p99: se.latency_p99_ms ? se.latency_p99_ms[i] : 0
      };
    }
    var cutoff = Math.floor(Date.now() / 1000) - HISTORY - 5;
    Object.keys(points).forEach(function (k) { if (+k < cutoff) { delete points[k]; } });
  }

  function svg(tag, attrs) {
    var e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }

  function niceMax(v) {
    if (v <= 0) { return 1; }
    var p = Math.pow(10, Math.floor(Math.log(v) / Math.log(10))), m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }

  function renderChart() {
    var box = $("chart");
    var W = 900, H = 220, L = 44, R = 56, T = 10, B = 24, pw = W - L - R, ph = H - T - B;
    var now = Math.floor(Date.now() / 1000) - 1, start = now - WINDOW + 1;
    var maxCalls = 0, maxLat = 0, total = 0, failed = 0;
    for (var t = start; t <= now; t++) {
      var p = points[t];
      if (!p) { continue; }
      maxCalls = Math.max(maxCalls, p.calls);
      maxLat = Math.max(maxLat, p.p99, p.p50);
      total += p.calls; failed += p.failed;
    }
    var yc = niceMax(maxCalls), yl = niceMax(maxLat);
    var root = svg("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", "aria-hidden": "true" });
    for (var g = 0; g <= 4; g++) {
      var y = T + ph - ph * g / 4;
      root.appendChild(svg("line", { x1: L, x2: L + pw, y1: y, y2: y, "class": "grid" }));
      var lc = svg("text", { x: L - 6, y: y + 4, "text-anchor": "end" }); lc.textContent = +(yc * g / 4).toPrecision(3); root.appendChild(lc);
      var ll = svg("text", { x: L + pw + 6, y: y + 4 }); ll.textContent = fmtMs(yl * g / 4); root.appendChild(ll);
    }
    var span = WINDOW / 60;
    var ago = function (sec) { return "−" + (sec >= 120 ? sec / 60 + " min" : sec + " s"); };
    [[ago(WINDOW), 0], [ago(WINDOW / 2), WINDOW / 2], ["now", WINDOW - 1]].forEach(function (x) {
      var tx = svg("text", { x: L + pw * x[1] / (WINDOW - 1), y: H - 6, "text-anchor": x[1] ? (x[1] === WINDOW - 1 ? "end" : "middle") : "start" });
      tx.textContent = x[0]; root.appendChild(tx);
    });
    // bars for calls (failed ones stacked in red), latency as lines that
    // break where a second had no call, with a dot on each second
    var bw = pw / WINDOW, d50 = "", d99 = "", prev = false, dots = [];
    for (var i = 0; i < WINDOW; i++) {
      var q = points[start + i];
      if (!q || q.calls <= 0) { prev = false; continue; }
      var x0 = L + i * bw;
      var hc = ph * q.calls / yc, hf = ph * q.failed / yc;
      root.appendChild(svg("rect", { x: x0, y: T + ph - hc, width: Math.max(bw, 1.5), height: hc - hf, "class": "calls" }));
      if (hf > 0) { root.appendChild(svg("rect", { x: x0, y: T + ph - hf, width: Math.max(bw, 1.5), height: hf, "class": "failed" })); }
      var cx = (x0 + bw / 2).toFixed(1), y50 = (T + ph - ph * q.p50 / yl).toFixed(1), y99 = (T + ph - ph * q.p99 / yl).toFixed(1);
      d50 += (prev ? " L" : " M") + cx + " " + y50;
      d99 += (prev ? " L" : " M") + cx + " " + y99;
      dots.push([cx, y50, "p50"], [cx, y99, "p99"]);
      prev = true;
    }
    if (d50) { root.appendChild(svg("path", { d: d50.trim(), "class": "p50" })); }
    if (d99) { root.appendChild(svg("path", { d: d99.trim(), "class": "p99" })); }
    if (dots.length <= 240) {
      dots.forEach(function (d) { root.appendChild(svg("circle", { cx: d[0], cy: d[1], r: 2.5, "class": "dot-" + d[2] })); });
    }
    box.textContent = "";
    box.appendChild(root);
    var label = span === 1 ? "minute" : span + " minutes";
    box.setAttribute("aria-label", total
      ? "Last " + label + ": " + Math.round(total) + " calls (" + Math.round(failed) + " failed), peak " + (+maxCalls.toPrecision(3)) + " calls per second, highest p99 latency " + fmtMs(maxLat) + "."
      : "No calls in the last " + label + ".");
  }

  // ---- the caller's tasks ------------------------------------------------------
  var tasks = {}; // request id -> task
  var STATES = {
    "task.accepted": "queued", "task.started": "running", "task.progress": "running",
    "task.completed": "completed", "task.failed": "failed", "task.expired": "expired", "task.cancelled": "cancelled"
  };
  // An event's place in a task's life. Events come from the gateway and the
  // workers on separate paths, so they can arrive out of order: a task shows
  // its events in this order, and the state of the furthest one.
  var RANK = { accepted: 0, started: 1, progress: 2, completed: 3, failed: 3, expired: 3, cancelled: 3 };
  function rank(name) { return RANK[name] === undefined ? 2 : RANK[name]; }

  function onTaskEvent(m) {
    var ev = m.data || {};
    var id = m.request_id || ev.request_id;
    if (!id) { return; }
    var t = tasks[id] || (tasks[id] = { id: id, events: [], state: "queued", top: -1, first: m.timestamp });
    var name = m.type.slice(5);
    if (t.events.length === 0 || rank(name) >= t.top) {
      t.top = rank(name);
      t.state = STATES[m.type] || name;
    }
    t.script = ev.script_name || t.script;
    t.worker = ev.worker_id || t.worker;
    t.updated = m.timestamp || new Date().toISOString();
    t.events.push(name);
    t.events.sort(function (a, b) { return rank(a) - rank(b); });
    var detail = ev.data || {};
    if (detail.error_code) { t.code = detail.error_code; }
    t.fresh = true;
    var ids = Object.keys(tasks);
    if (ids.length > MAX_TASKS) {
      ids.sort(function (a, b) { return tasks[a].updated < tasks[b].updated ? -1 : 1; });
      ids.slice(0, ids.length - MAX_TASKS).forEach(function (k) { delete tasks[k]; });
    }
    renderTasks();
  }

  function renderTasks() {
    var tbody = $("tasks").tBodies[0];
    var list = Object.keys(tasks).map(function (k) { return tasks[k]; });
    text($("t-count"), list.length ? "(" + list.length + ")" : "");
    tbody.textContent = "";
    if (!list.length) {
      var tr0 = el("tr", "empty"), td0 = el("td", null, "No task yet: tasks appear here as their events arrive.");
      td0.colSpan = 6; tr0.appendChild(td0); tbody.appendChild(tr0);
      return;
    }
    list.sort(function (a, b) { return a.updated < b.updated ? 1 : -1; });
    list.forEach(function (t) {
      var tr = el("tr", t.fresh ? "fresh" : "");
      t.fresh = false;
      tr.setAttribute("data-request-id", t.id);
      var idc = el("td", "mono", t.id.length > 13 ? t.id.slice(0, 8) + "…" : t.id);
      idc.title = t.id;
      tr.appendChild(idc);
      tr.appendChild(el("td", "mono", t.script || "–"));
      var st = el("td", "state");
      st.appendChild(badge(t.state, t.state + (t.code ? " · " + t.code : "")));
      tr.appendChild(st);
      tr.appendChild(el("td", "mono", t.worker || "–"));
      var up = el("td", "age", ago(t.updated));
      up.setAttribute("data-ts", t.updated || "");
      tr.appendChild(up);
      tr.appendChild(el("td", "events", t.events.join(" → ")));
      tbody.appendChild(tr);
    });
  }

  // refresh the "… ago" cells and the chart's time axis once a second
  setInterval(function () {
    if ($("main").hidden) { return; }
    Array.prototype.forEach.call(document.querySelectorAll("td.age"), function (td) {
      var ts = td.getAttribute("data-ts");
      if (ts) { td.textContent = ago(ts); }
    });
    renderChart();
  }, 1000);

  // ---- controls --------------------------------------------------------------
  Array.prototype.forEach.call(document.querySelectorAll(".seg button"), function (btn) {
    btn.addEventListener("click", function () {
      WINDOW = +btn.getAttribute("data-window");
      Array.prototype.forEach.call(document.querySelectorAll(".seg button"), function (o) {
        o.setAttribute("aria-pressed", o === btn ? "true" : "false");
      });
      var m = WINDOW / 60;
      text($("win-label"), m === 1 ? "minute" : m + " minutes");
      renderChart();
    });
  });
  $("login-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    token = $("token").value.trim();
    if (!token) { return; }
    saveToken(token, $("remember").checked);
    $("token").value = "";
    connect();
  });
  $("forget").addEventListener("click", function () {
    disconnect();
    saveToken("", false);
    token = "";
    tasks = {}; renderTasks();
    showLogin("");
  });
  var echo = $("run-echo");
  if (echo) {
    echo.addEventListener("click", function () {
      echo.disabled = true;
      notice("Running echo…");
      var h = authHeaders(token);
      h["Content-Type"] = "application/json";
      fetch(cfg.scrape, {
        method: "POST", headers: h,
        body: JSON.stringify({ script_name: "echo", parameters: { from: "dashboard" }, timeout: 30 })
      }).then(function (r) { return r.json().then(function (b) { return { status: r.status, body: b }; }); }).then(function (res) {
        var b = res.body || {};
        notice(res.status === 200
          ? "echo " + b.status + " in " + fmtMs((b.execution_time || 0) * 1000) + " (request " + b.request_id + ")"
          : "echo: HTTP " + res.status + " " + (b.code || "") + (b.detail ? ": " + b.detail : ""));
      }, function (e) { notice("echo: " + e.message); }).then(function () { echo.disabled = false; });
    });
  }

  if (token) { connect(); } else { showLogin(""); }
})();
