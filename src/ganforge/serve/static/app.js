/* ganforge studio: runs list, run page (curves, sample timeline, config) and generator playground.
   Plain JavaScript, no build step and no network beyond this server, so the studio works offline.
   Every API call goes through api(), which adds the bearer token when the studio has one: the token
   comes from ?token=... once, is kept in sessionStorage (this tab only) and removed from the address bar.
   Images are fetched as blobs (an <img src> could not carry the header) and shown through object URLs. */
"use strict";

(() => {
  const TOKEN_KEY = "ganforge-token";
  const PALETTE = ["#4f46e5", "#dc2626", "#059669", "#d97706", "#0891b2", "#db2777", "#7c3aed", "#4b5563"];
  const MAX_SEED = 4294967295;
  const MAX_UPLOAD = 10 * 1024 * 1024;

  // ---- token bootstrap -------------------------------------------------------------------------
  const query = new URLSearchParams(location.search);
  if (query.has("token")) {
    sessionStorage.setItem(TOKEN_KEY, query.get("token"));
    query.delete("token");
    const rest = query.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  }
  const token = () => sessionStorage.getItem(TOKEN_KEY);

  // ---- small helpers ---------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, detail) { super(detail); this.status = status; }
  }

  async function api(path, { signal, method = "GET", body, as = "json" } = {}) {
    const headers = {};
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    const r = await fetch(path, { method, body, headers, signal, cache: "no-cache" });
    if (!r.ok) {
      let detail = r.statusText || "request failed";
      try { const j = await r.json(); if (j && j.detail) detail = String(j.detail); } catch (_) { /* not JSON */ }
      if (r.status === 401) showLogin(detail);
      throw new ApiError(r.status, detail);
    }
    if (as === "blob") return { blob: await r.blob(), headers: r.headers };
    return r.json();
  }

  /* h("div", {class: "x", onclick: f}, child, "text"): an element; text is always text, never HTML. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k === "style") el.style.cssText = v; // CSSOM, which the page's CSP allows (a style attribute it would not)
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  /* el.replaceChildren, skipping null/false (the DOM would show them as the text "null"). */
  function fill(el, ...children) {
    el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  }

  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
    return v.toPrecision(4).replace(/\.?0+$/, "");
  }

  function fmtStep(v) {
    if (v >= 1e6) return (v / 1e6).toFixed(v % 1e6 ? 1 : 0) + "M";
    if (v >= 1e4) return (v / 1e3).toFixed(v % 1e3 ? 1 : 0) + "k";
    return String(Math.round(v));
  }

  function ago(t) {
    if (!t) return "";
    const s = Math.max(0, Date.now() / 1000 - t);
    if (s < 60) return Math.round(s) + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }

  let toastTimer = 0;
  function toast(msg) {
    document.querySelectorAll(".toast").forEach((t) => t.remove());
    const t = h("div", { class: "toast", role: "alert" }, msg);
    document.body.append(t);
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => t.remove(), 5000);
  }

  const isAbort = (e) => e && e.name === "AbortError";

  /* An <img> fed from blobs: the previous object URL is released when a new image arrives. */
  class BlobImage {
    constructor(attrs) { this.el = h("img", attrs); this.url = null; }
    set(blob) {
      const old = this.url;
      this.url = URL.createObjectURL(blob);
      this.el.src = this.url;
      if (old) setTimeout(() => URL.revokeObjectURL(old), 1000);
    }
    dispose() { if (this.url) URL.revokeObjectURL(this.url); this.url = null; }
  }

  const badge = (status) => {
    const state = (status && status.state) || "stopped";
    return h("span", { class: "badge " + state, title: (status && status.message) || "" }, state);
  };

  const enc = encodeURIComponent;

  // ---- router ----------------------------------------------------------------------------------
  const view = document.getElementById("view");
  const crumbs = document.getElementById("crumbs");
  let cleanup = null;

  function setCrumbs(...parts) {
    crumbs.replaceChildren(...parts.flatMap((p, i) => (i ? [" / ", p] : [p])));
  }

  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, "");
    const [path, qs] = raw.split("?");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    return { parts, qs: new URLSearchParams(qs || "") };
  }

  async function route() {
    if (cleanup) { try { cleanup(); } catch (_) { /* ignore */ } cleanup = null; }
    const { parts, qs } = parseHash();
    view.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      if (parts[0] === "attack") cleanup = await attackView(qs);
      else if ((parts[0] === "run" || parts[0] === "runs") && parts[1] && parts[2] === "curate") cleanup = await curateView(parts[1], qs);
      else if (parts[0] === "run" && parts[1]) cleanup = await runView(parts[1]);
      else if (parts[0] === "play" && parts[1]) cleanup = await playView(parts[1], qs);
      else cleanup = await runsView();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return;
      view.replaceChildren(h("div", { class: "panel empty" }, h("p", { class: "error" }, e.message || String(e)),
        h("a", { class: "btn", href: "#/" }, "All runs")));
    }
  }

  function showLogin(detail) {
    if (cleanup) { try { cleanup(); } catch (_) { /* ignore */ } cleanup = null; }
    setCrumbs(h("b", {}, "sign in"));
    const input = h("input", { type: "password", placeholder: "token", autocomplete: "current-password", "aria-label": "token" });
    const form = h("form", { class: "panel login", onsubmit: (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      route();
    } },
    h("h2", {}, "This studio needs a token"),
    h("p", { class: "muted" }, token() ? "The token given was not accepted. " : "", "Enter the token given to ",
      h("span", { class: "mono" }, "ganforge serve --token"), ", or open the studio at ", h("span", { class: "mono" }, "/?token=…"), "."),
    input, h("button", { class: "btn primary", type: "submit" }, "Open"),
    detail ? h("p", { class: "muted mono" }, detail) : null);
    view.replaceChildren(form);
    input.focus();
  }

  // ---- runs list -------------------------------------------------------------------------------
  async function runsView() {
    setCrumbs(h("b", {}, "runs"));
    let timer = 0;
    let stopped = false;
    const thumbs = new Map(); // run name -> {key, img}
    const ctrl = new AbortController();

    async function thumbFor(run) {
      const step = run.sample_steps && run.sample_steps.length ? run.sample_steps[run.sample_steps.length - 1] : null;
      let t = thumbs.get(run.name);
      if (!t) { t = { key: null, img: new BlobImage({ class: "thumb", alt: "" }) }; thumbs.set(run.name, t); }
      if (step !== null && t.key !== step) {
        t.key = step;
        api(`/api/runs/${enc(run.name)}/samples/${step}.png`, { as: "blob", signal: ctrl.signal })
          .then((r) => t.img.set(r.blob)).catch(() => {});
      }
      return t.img.el;
    }

    async function refresh() {
      let data;
      try { data = await api("/api/runs", { signal: ctrl.signal }); } catch (e) {
        if (isAbort(e) || (e instanceof ApiError && e.status === 401)) return;
        toast(e.message);
        timer = setTimeout(refresh, 10000);
        return;
      }
      if (stopped) return;
      const runs = data.runs || [];
      const head = h("div", { class: "pagehead" }, h("h1", {}, "Runs"),
        h("span", { class: "muted mono", title: "RUNS_DIR" }, data.runs_dir), h("span", { class: "spacer" }),
        h("span", { class: "muted" }, runs.length + (runs.length === 1 ? " run" : " runs")),
        h("a", { class: "btn", href: "#/attack", id: "open-attack", title: "fool a classifier with an invisible perturbation" }, "Adversarial examples →"));
      if (!runs.length) {
        view.replaceChildren(head, h("div", { class: "panel empty" },
          h("p", {}, "No runs here yet."),
          h("p", { class: "muted" }, "Train one with ", h("code", {}, "ganforge train --data FOLDER --run NAME"),
            " or import a network with ", h("code", {}, "ganforge import"), "; it appears here by itself.")));
      } else {
        const cards = [];
        for (const run of runs) cards.push(await card(run));
        view.replaceChildren(head, h("div", { class: "cards" }, cards));
      }
      const live = runs.some((r) => r.status && r.status.state === "training");
      timer = setTimeout(refresh, live ? 3000 : 15000);
    }

    async function card(run) {
      if (run.error) return h("div", { class: "panel card" }, h("div", { class: "body" }, h("div", { class: "name" }, run.name), h("p", { class: "error" }, run.error)));
      const meta = [run.family, run.dataset, run.resolution ? run.resolution + " px" : null,
        run.num_classes ? run.num_classes + " classes" : null, run.imported ? "imported" : null].filter(Boolean).join(" · ");
      const planned = run.steps_planned || null;
      const pct = planned ? Math.min(100, (100 * run.step) / planned) : null;
      const losses = Object.entries(run.losses || {}).slice(0, 4).map(([k, v]) => h("span", {}, k.replace(/^loss_?/, "loss ") + " ", h("b", {}, fmt(v))));
      const metric = run.metric ? h("span", {}, run.metric.key + " ", h("b", {}, fmt(run.metric.value)), " @" + fmtStep(run.metric.step)) : null;
      const status = run.status || {};
      return h("a", { class: "panel card", href: "#/run/" + enc(run.name), "data-run": run.name },
        await thumbFor(run),
        h("div", { class: "body" },
          h("div", { class: "name" }, h("span", {}, run.name), badge(status)),
          h("div", { class: "meta" }, meta),
          h("div", { class: "kv" }, h("span", {}, "step ", h("b", {}, fmtStep(run.step)), planned ? " / " + fmtStep(planned) : ""),
            status.updated ? h("span", {}, ago(status.updated)) : null),
          pct !== null ? h("div", { class: "progress", title: pct.toFixed(1) + " %" }, h("i", { style: `width:${pct}%` })) : null,
          h("div", { class: "kv" }, losses, metric),
          status.state === "failed" && status.message ? h("div", { class: "meta error" }, status.message) : null));
    }

    await refresh();
    return () => { stopped = true; clearTimeout(timer); ctrl.abort(); thumbs.forEach((t) => t.img.dispose()); };
  }

  // ---- charts (canvas, drawn here: no library) -------------------------------------------------
  function niceStep(span, count) {
    const raw = span / Math.max(count, 1);
    const mag = Math.pow(10, Math.floor(Math.log10(raw || 1)));
    const n = raw / mag;
    return (n >= 5 ? 10 : n >= 2 ? 5 : n >= 1 ? 2 : 1) * mag;
  }

  function ema(ys, span) {
    const a = 2 / (span + 1);
    let acc = ys[0];
    return ys.map((y) => (acc = a * y + (1 - a) * acc));
  }

  /* One chart: lines for `keys` of `series` against the step; hover shows the values at a step. */
  class Chart {
    constructor(title, keys, smoothable) {
      this.title = title; this.keys = keys; this.series = {}; this.hover = null;
      this.smooth = h("input", { type: "checkbox", checked: smoothable, onchange: () => this.draw() });
      this.canvas = h("canvas", { role: "img", "aria-label": title + " chart" });
      this.legend = h("div", { class: "legend" });
      this.el = h("section", { class: "panel chart" },
        h("div", { class: "charthead" }, h("h2", {}, title), smoothable ? h("label", {}, this.smooth, " smooth") : null),
        this.canvas, this.legend);
      this.canvas.addEventListener("mousemove", (ev) => { this.hover = ev.offsetX; this.draw(); });
      this.canvas.addEventListener("mouseleave", () => { this.hover = null; this.draw(); });
    }

    update(series) {
      this.series = series;
      this.legend.replaceChildren(...this.keys.map((k, i) => {
        const s = series[k];
        const last = s && s.y.length ? s.y[s.y.length - 1] : null;
        return h("span", {}, h("i", { style: `background:${PALETTE[i % PALETTE.length]}` }), k + " ", h("b", { class: "mono" }, fmt(last)));
      }));
      this.draw();
    }

    draw() {
      const c = this.canvas;
      const dpr = window.devicePixelRatio || 1;
      const w = c.clientWidth, hgt = c.clientHeight;
      if (!w || !hgt) return;
      if (c.width !== Math.round(w * dpr) || c.height !== Math.round(hgt * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(hgt * dpr); }
      const g = c.getContext("2d");
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      g.clearRect(0, 0, w, hgt);
      const css = getComputedStyle(document.documentElement);
      const muted = css.getPropertyValue("--muted").trim() || "#6b7280";
      const line = css.getPropertyValue("--line").trim() || "#e5e7eb";
      const lines = [];
      for (const [i, k] of this.keys.entries()) {
        const s = this.series[k];
        if (!s || !s.x.length) continue;
        const ys = this.smooth.checked && s.y.length > 8 ? ema(s.y, Math.max(2, Math.round(s.y.length / 40))) : s.y;
        lines.push({ k, xs: s.x, ys, raw: s.y, color: PALETTE[i % PALETTE.length] });
      }
      g.font = "11px system-ui, sans-serif";
      if (!lines.length) { g.fillStyle = muted; g.fillText("nothing logged yet", 12, 20); return; }
      let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
      for (const l of lines) {
        x0 = Math.min(x0, l.xs[0]); x1 = Math.max(x1, l.xs[l.xs.length - 1]);
        for (const y of l.ys) { if (y < y0) y0 = y; if (y > y1) y1 = y; }
      }
      if (x1 === x0) { x0 -= 1; x1 += 1; }
      if (y1 === y0) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
      const pad = (y1 - y0) * 0.06; y0 -= pad; y1 += pad;
      const L = 46, R = 10, T = 8, B = 22;
      const X = (x) => L + ((x - x0) / (x1 - x0)) * (w - L - R);
      const Y = (y) => T + (1 - (y - y0) / (y1 - y0)) * (hgt - T - B);
      // Grid and tick labels.
      g.strokeStyle = line; g.fillStyle = muted; g.lineWidth = 1;
      const ys = niceStep(y1 - y0, Math.max(2, Math.floor((hgt - T - B) / 40)));
      g.textAlign = "right"; g.textBaseline = "middle";
      for (let v = Math.ceil(y0 / ys) * ys; v <= y1; v += ys) {
        g.beginPath(); g.moveTo(L, Math.round(Y(v)) + 0.5); g.lineTo(w - R, Math.round(Y(v)) + 0.5); g.stroke();
        g.fillText(fmt(Number(v.toPrecision(6))), L - 6, Y(v));
      }
      const xs = Math.max(1, niceStep(x1 - x0, Math.max(2, Math.floor((w - L - R) / 80)))); // steps are whole
      g.textAlign = "center"; g.textBaseline = "top";
      for (let v = Math.ceil(x0 / xs) * xs; v <= x1; v += xs) g.fillText(fmtStep(v), X(v), hgt - B + 6);
      // Lines.
      g.lineWidth = 1.6; g.lineJoin = "round";
      for (const l of lines) {
        g.strokeStyle = l.color; g.beginPath();
        l.xs.forEach((x, j) => (j ? g.lineTo(X(x), Y(l.ys[j])) : g.moveTo(X(x), Y(l.ys[j]))));
        if (l.xs.length === 1) { g.fillStyle = l.color; g.fillRect(X(l.xs[0]) - 2, Y(l.ys[0]) - 2, 4, 4); }
        g.stroke();
      }
      // Hover: the values at the nearest logged step.
      if (this.hover !== null && this.hover >= L) {
        const xv = x0 + ((this.hover - L) / (w - L - R)) * (x1 - x0);
        const parts = [];
        let xs0 = null;
        for (const l of lines) {
          let j = 0, best = Infinity;
          l.xs.forEach((x, i) => { const d = Math.abs(x - xv); if (d < best) { best = d; j = i; } });
          xs0 = xs0 === null ? l.xs[j] : xs0;
          parts.push([l.color, `${l.k} ${fmt(l.raw[j])}`]);
          g.fillStyle = l.color; g.beginPath(); g.arc(X(l.xs[j]), Y(l.ys[j]), 3, 0, 7); g.fill();
        }
        g.strokeStyle = muted; g.setLineDash([3, 3]); g.beginPath(); g.moveTo(X(xs0), T); g.lineTo(X(xs0), hgt - B); g.stroke(); g.setLineDash([]);
        g.textAlign = "left"; g.textBaseline = "top";
        const text = `step ${fmtStep(xs0)}`;
        let tx = L + 6, ty = T + 2;
        g.fillStyle = muted; g.fillText(text, tx, ty);
        for (const [color, t] of parts) { ty += 14; g.fillStyle = color; g.fillText(t, tx, ty); }
      }
    }
  }

  // ---- run page --------------------------------------------------------------------------------
  async function runView(name) {
    const base = `/api/runs/${enc(name)}`;
    const ctrl = new AbortController();
    let run = await api(base, { signal: ctrl.signal });
    setCrumbs(h("a", { href: "#/" }, "runs"), h("b", {}, run.name));
    let timer = 0, playTimer = 0, stopped = false;
    const charts = new Map();
    const chartBox = h("div", { class: "charts" });
    const head = h("div", { class: "pagehead" });
    const gridImg = new BlobImage({ alt: "sample grid" });
    const slider = h("input", { type: "range", min: 0, max: 0, step: 1, value: 0, "aria-label": "sample step" });
    const stepLabel = h("span", { class: "mono" });
    const playBtn = h("button", { class: "btn", type: "button", title: "play the timeline" }, "▶");
    const timeline = h("section", { class: "panel timeline" }, h("h2", {}, "Samples over training"),
      gridImg.el, h("div", { class: "row" }, playBtn, slider, stepLabel),
      h("p", { class: "muted", style: "font-size:.82rem;margin:.4rem 0 0" }, "The same seeds at every step, so grids compare over time."));
    const configBox = h("section", { class: "panel" }, h("h2", {}, "Config"));
    view.replaceChildren(head, h("div", { class: "grid2" }, chartBox, h("div", { class: "stack" }, timeline, configBox)));

    let steps = [];
    let shown = null;
    function showStep(i) {
      if (!steps.length) { stepLabel.textContent = "no grids yet"; return; }
      const step = steps[Math.max(0, Math.min(i, steps.length - 1))];
      stepLabel.textContent = "step " + fmtStep(step);
      if (shown === step) return;
      shown = step;
      api(`${base}/samples/${step}.png`, { as: "blob", signal: ctrl.signal }).then((r) => gridImg.set(r.blob)).catch((e) => { if (!isAbort(e)) toast(e.message); });
    }
    slider.addEventListener("input", () => showStep(Number(slider.value)));
    playBtn.addEventListener("click", () => {
      if (playTimer) { clearInterval(playTimer); playTimer = 0; playBtn.textContent = "▶"; return; }
      playBtn.textContent = "❚❚";
      if (Number(slider.value) >= steps.length - 1) slider.value = 0;
      playTimer = setInterval(() => {
        const v = Number(slider.value) + 1;
        if (v >= steps.length) { clearInterval(playTimer); playTimer = 0; playBtn.textContent = "▶"; return; }
        slider.value = v; showStep(v);
      }, 350);
    });

    function renderHead() {
      const planned = run.steps_planned;
      const caps = run.capabilities || {};
      fill(head, h("h1", {}, run.name), badge(run.status),
        h("div", { class: "facts" },
          h("span", {}, h("b", {}, run.family || "?"), " on ", h("b", {}, run.dataset || "?")),
          run.resolution ? h("span", {}, run.resolution + " px" + (run.channels === 1 ? " gray" : "")) : null,
          run.num_classes ? h("span", {}, run.num_classes + " classes") : null,
          h("span", {}, "step ", h("b", {}, fmtStep(run.step)), planned ? " / " + fmtStep(planned) : ""),
          run.checkpoint_step !== null ? h("span", {}, "checkpoint " + fmtStep(run.checkpoint_step)) : h("span", {}, "no checkpoint yet"),
          run.status && run.status.message ? h("span", { class: run.status.state === "failed" ? "error" : "" }, run.status.message) : null),
        h("span", { class: "spacer" }),
        run.checkpoint_step !== null && caps.inputs === "noise" && (!run.kind || run.kind === "image")
          ? h("a", { class: "btn", href: "#/run/" + enc(run.name) + "/curate", id: "open-curate", title: "generate many, score them, keep the best" }, "Curate →") : null,
        run.checkpoint_step !== null && caps.inputs !== "unknown"
          ? h("a", { class: "btn primary", href: "#/play/" + enc(run.name) }, caps.inputs === "image" ? "Translate images →" : "Open playground →") : null);
    }

    function renderConfig() {
      const rows = [];
      const cfg = run.config || {};
      for (const [k, v] of Object.entries(cfg)) {
        if (v && typeof v === "object" && !Array.isArray(v)) {
          for (const [k2, v2] of Object.entries(v)) rows.push([k + "." + k2, v2]);
        } else rows.push([k, v]);
      }
      configBox.replaceChildren(h("h2", {}, "Config"), h("div", { class: "config" },
        h("table", {}, h("tbody", {}, rows.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, typeof v === "string" ? v : JSON.stringify(v))))))));
    }

    function renderSamples() {
      const atEnd = !steps.length || Number(slider.value) >= steps.length - 1;
      steps = run.sample_steps || [];
      slider.max = Math.max(0, steps.length - 1);
      slider.disabled = steps.length < 2;
      playBtn.disabled = steps.length < 2;
      if (atEnd && !playTimer) slider.value = Math.max(0, steps.length - 1); // follow the newest grid while training
      showStep(Number(slider.value));
    }

    async function loadMetrics() {
      const m = await api(`${base}/metrics`, { signal: ctrl.signal });
      const groups = m.groups || [];
      if (!groups.length) { chartBox.replaceChildren(h("section", { class: "panel" }, h("h2", {}, "Curves"), h("p", { class: "muted" }, "Nothing logged yet."))); return; }
      if (!charts.size) chartBox.replaceChildren();
      for (const g of groups) {
        let c = charts.get(g.title);
        if (!c || c.keys.join() !== g.keys.join()) {
          const fresh = new Chart(g.title, g.keys, g.title === "Losses" || g.title.startsWith("Gradient"));
          if (c) c.el.replaceWith(fresh.el); else chartBox.append(fresh.el);
          charts.set(g.title, fresh); c = fresh;
        }
        c.update(m.series);
      }
    }

    async function refresh() {
      try {
        run = await api(base, { signal: ctrl.signal });
        renderHead(); renderSamples();
        await loadMetrics();
      } catch (e) { if (!isAbort(e) && !(e instanceof ApiError && e.status === 401)) toast(e.message); }
      if (!stopped && run.status && run.status.state === "training") timer = setTimeout(refresh, 4000);
    }

    renderHead(); renderConfig(); renderSamples();
    await loadMetrics();
    if (run.status && run.status.state === "training") timer = setTimeout(refresh, 4000);
    const onResize = () => charts.forEach((c) => c.draw());
    window.addEventListener("resize", onResize);
    return () => {
      stopped = true; clearTimeout(timer); clearInterval(playTimer); ctrl.abort(); gridImg.dispose();
      window.removeEventListener("resize", onResize);
    };
  }

  // ---- playground ------------------------------------------------------------------------------
  function field(label, input, out) {
    return h("label", { class: "field" }, h("span", {}, label, out || null), input);
  }

  async function playView(name, qs) {
    const base = `/api/runs/${enc(name)}`;
    const run = await api(base);
    setCrumbs(h("a", { href: "#/" }, "runs"), h("a", { href: "#/run/" + enc(run.name) }, run.name), h("b", {}, "playground"));
    const caps = run.capabilities || {};
    if (run.checkpoint_step === null) {
      view.replaceChildren(h("div", { class: "panel empty" }, h("p", {}, "This run has no checkpoint yet."),
        h("p", { class: "muted" }, "The playground opens once training saves its first one.")));
      return () => {};
    }
    if (caps.inputs === "image") return translateView(run, base);
    if (caps.inputs !== "noise") throw new Error(`this run's family (${run.family}) is unknown to this ganforge`);
    return noiseView(run, base, qs);
  }

  function randomSeed() {
    const a = new Uint32Array(1);
    crypto.getRandomValues(a);
    return a[0] % 100000;
  }

  function noiseView(run, base, qs) {
    const disposers = [];
    const clampSeed = (v) => Math.max(0, Math.min(MAX_SEED, Math.floor(Number(v) || 0)));
    const state = {
      seed: clampSeed(qs.get("seed") || 0),
      psi: caps(run).truncation ? Number(qs.get("psi") || 0.7) : 1,
      cls: qs.get("class") || "",
      noise: qs.get("noise") || "const",
      prompt: qs.get("prompt") || "",
    };
    if (!Number.isFinite(state.psi) || state.psi < -2 || state.psi > 2) state.psi = 0.7;

    // Controls.
    const seedNum = h("input", { type: "number", min: 0, max: MAX_SEED, step: 1, value: state.seed, id: "seed", "aria-label": "seed" });
    const seedRange = h("input", { type: "range", min: 0, max: 999, step: 1, value: Math.min(state.seed, 999), id: "seed-range", "aria-label": "seed slider" });
    const prev = h("button", { class: "btn", type: "button", title: "previous seed (←)", "aria-label": "previous seed" }, "−");
    const next = h("button", { class: "btn", type: "button", title: "next seed (→)", "aria-label": "next seed", id: "seed-next" }, "+");
    const rand = h("button", { class: "btn", type: "button", title: "a random seed", id: "seed-random" }, "Random");
    const controls = [field("Seed", h("div", {}, h("div", { class: "row" }, prev, seedNum, next, rand), seedRange))];
    let psiRange = null, psiOut = null;
    if (caps(run).truncation) {
      psiOut = h("output", {}, state.psi.toFixed(2));
      psiRange = h("input", { type: "range", min: -1, max: 2, step: 0.05, value: state.psi, id: "psi", "aria-label": "truncation psi" });
      controls.push(field("Truncation ψ", psiRange, psiOut));
    }
    let clsSel = null;
    if (run.num_classes) {
      clsSel = h("select", { id: "class", "aria-label": "class" }, h("option", { value: "" }, "each seed's own class"),
        (run.class_names.length ? run.class_names : Array.from({ length: run.num_classes }, (_, i) => String(i)))
          .map((c, i) => h("option", { value: String(i) }, run.class_names.length ? `${i}: ${c}` : c)));
      clsSel.value = state.cls;
      controls.push(field("Class", clsSel));
    }
    let promptIn = null;
    if (caps(run).text) {  // text-conditioned: a prompt box, with the training captions as suggestions
      const examples = run.example_prompts || [];
      if (!state.prompt && examples.length) state.prompt = examples[0];
      const list = h("datalist", { id: "prompt-examples" }, examples.map((p) => h("option", { value: p })));
      promptIn = h("input", { type: "text", id: "prompt", maxlength: 128, list: "prompt-examples", value: state.prompt,
        "aria-label": "prompt", placeholder: "red heart" });
      controls.push(field("Prompt", h("div", {}, promptIn, list)));
    }
    let noiseSel = null;
    if ((caps(run).noise_modes || []).length) {
      noiseSel = h("select", { id: "noise", "aria-label": "noise mode" }, caps(run).noise_modes.map((m) => h("option", { value: m }, m)));
      noiseSel.value = caps(run).noise_modes.includes(state.noise) ? state.noise : "const";
      controls.push(field("Per-pixel noise", noiseSel));
    }
    const download = h("a", { class: "btn", download: "", id: "download" }, "Download PNG");
    controls.push(h("div", { class: "row" }, download, h("a", { class: "btn", href: "#/run/" + enc(run.name) }, "Curves")));

    // Stage.
    const img = new BlobImage({ alt: "generated image", id: "gen" });
    const frame = h("div", { class: "frame" }, img.el, h("div", { class: "spin" }));
    const caption = h("div", { class: "caption", id: "caption" });
    const stage = h("div", { class: "stage" }, frame, caption);

    // Extras: interpolation and style mixing.
    const toSeed = h("input", { type: "number", min: 0, max: MAX_SEED, value: (state.seed + 1) % 1000, "aria-label": "to seed" });
    const frames = h("input", { type: "range", min: 8, max: 120, step: 4, value: 48, "aria-label": "frames" });
    const framesOut = h("output", {}, "48");
    frames.addEventListener("input", () => (framesOut.textContent = frames.value));
    const gif = new BlobImage({ alt: "interpolation", hidden: true });
    const gifBtn = h("button", { class: "btn primary", type: "button" }, "Animate");
    const gifLink = h("a", { class: "btn", download: "", hidden: true }, "Download GIF");
    const interp = h("section", { class: "panel" }, h("h2", {}, "Interpolate between two seeds"),
      field("To seed", h("div", { class: "row" }, toSeed, h("button", { class: "btn", type: "button", onclick: () => (toSeed.value = randomSeed()) }, "Random"))),
      field("Frames in the loop", frames, framesOut), h("div", { class: "row" }, gifBtn, gifLink), gif.el);
    const extras = [interp];
    let mixImg = null;
    if (caps(run).style_mixing) {
      const rows = h("input", { type: "text", value: "1,2,3", "aria-label": "row seeds" });
      const cols = h("input", { type: "text", value: "4,5,6,7", "aria-label": "column seeds" });
      const styles = h("select", { "aria-label": "styles" }, h("option", { value: "coarse" }, "coarse: pose, shape"),
        h("option", { value: "middle" }, "middle: features"), h("option", { value: "fine" }, "fine: colour, texture"));
      mixImg = new BlobImage({ alt: "style mixing grid", hidden: true });
      const mixBtn = h("button", { class: "btn primary", type: "button" }, "Mix");
      mixBtn.addEventListener("click", async () => {
        mixBtn.disabled = true;
        try {
          const q = new URLSearchParams({ rows: rows.value, cols: cols.value, styles: styles.value, psi: String(state.psi), noise: state.noise });
          if (state.cls) q.set("class", state.cls);
          const r = await api(`${base}/mix.png?${q}`, { as: "blob" });
          mixImg.set(r.blob); mixImg.el.hidden = false;
        } catch (e) { toast(e.message); } finally { mixBtn.disabled = false; }
      });
      extras.push(h("section", { class: "panel" }, h("h2", {}, "Style mixing"),
        h("p", { class: "muted", style: "font-size:.85rem;margin-top:0" }, "Each cell takes its row's image with some layers' styles from its column's."),
        field("Row seeds", rows), field("Column seeds", cols), field("Styles taken from the columns", styles), mixBtn, mixImg.el));
    }

    view.replaceChildren(
      h("div", { class: "pagehead" }, h("h1", {}, run.name), badge(run.status),
        h("div", { class: "facts" }, h("span", {}, h("b", {}, run.family), " · " + (run.resolution || "?") + " px"),
          h("span", {}, "checkpoint ", h("b", {}, fmtStep(run.checkpoint_step))))),
      h("div", { class: "play" }, h("section", { class: "panel controls" }, controls), stage),
      h("div", { class: "extras" }, extras));

    // Generation: debounced, and a newer request aborts the one in flight (the server then skips it).
    let ctrl = null, debounce = 0, seq = 0;
    function paramsNow() {
      const q = new URLSearchParams({ seed: String(state.seed) });
      if (caps(run).truncation) q.set("psi", state.psi.toFixed(2));
      if (state.cls) q.set("class", state.cls);
      if (noiseSel) q.set("noise", state.noise);
      if (promptIn && state.prompt.trim()) q.set("prompt", state.prompt);
      return q;
    }
    async function generate() {
      if (ctrl) ctrl.abort();
      ctrl = new AbortController();
      const mine = ++seq;
      const q = paramsNow();
      history.replaceState(null, "", `#/play/${enc(run.name)}?${q}`);
      frame.classList.add("busy");
      const t0 = performance.now();
      try {
        const r = await api(`${base}/generate.png?${q}`, { as: "blob", signal: ctrl.signal });
        if (mine !== seq) return;
        img.set(r.blob);
        img.el.dataset.seed = String(state.seed);
        download.href = img.url;
        download.setAttribute("download", `${run.name}-seed${state.seed}.png`);
        const ms = Math.round(performance.now() - t0);
        caption.textContent = [`seed ${state.seed}`, caps(run).truncation ? `ψ ${state.psi.toFixed(2)}` : null,
          state.cls && run.class_names.length ? run.class_names[Number(state.cls)] : null,
          promptIn && state.prompt.trim() ? `“${state.prompt.trim()}”` : null,
          `step ${fmtStep(Number(r.headers.get("X-Ganforge-Step") || run.checkpoint_step))}`, `${ms} ms`].filter(Boolean).join(" · ");
      } catch (e) {
        if (!isAbort(e)) toast(e.message);
      } finally {
        if (mine === seq) frame.classList.remove("busy");
      }
    }
    function schedule() { clearTimeout(debounce); debounce = setTimeout(generate, 80); }
    function setSeed(v) {
      state.seed = clampSeed(v);
      seedNum.value = state.seed;
      seedRange.value = Math.min(state.seed, 999);
      schedule();
    }
    seedNum.addEventListener("input", () => { if (seedNum.value !== "") setSeed(seedNum.value); });
    seedRange.addEventListener("input", () => setSeed(seedRange.value));
    prev.addEventListener("click", () => setSeed(Math.max(0, state.seed - 1)));
    next.addEventListener("click", () => setSeed(state.seed + 1));
    rand.addEventListener("click", () => setSeed(randomSeed()));
    if (psiRange) psiRange.addEventListener("input", () => { state.psi = Number(psiRange.value); psiOut.textContent = state.psi.toFixed(2); schedule(); });
    if (clsSel) clsSel.addEventListener("change", () => { state.cls = clsSel.value; schedule(); });
    if (noiseSel) noiseSel.addEventListener("change", () => { state.noise = noiseSel.value; schedule(); });
    if (promptIn) promptIn.addEventListener("input", () => { state.prompt = promptIn.value; clearTimeout(debounce); debounce = setTimeout(generate, 300); });
    const onKey = (ev) => {
      if (ev.target instanceof HTMLInputElement || ev.target instanceof HTMLSelectElement) return;
      if (ev.key === "ArrowRight") setSeed(state.seed + 1);
      else if (ev.key === "ArrowLeft") setSeed(Math.max(0, state.seed - 1));
    };
    window.addEventListener("keydown", onKey);
    disposers.push(() => window.removeEventListener("keydown", onKey));

    gifBtn.addEventListener("click", async () => {
      gifBtn.disabled = true; gifBtn.textContent = "Rendering…";
      try {
        const q = new URLSearchParams({ from: String(state.seed), to: String(clampSeed(toSeed.value)), frames: frames.value });
        if (caps(run).truncation) q.set("psi", state.psi.toFixed(2));
        if (state.cls) q.set("class", state.cls);
        if (promptIn && state.prompt.trim()) q.set("prompt", state.prompt);
        const r = await api(`${base}/interpolate.gif?${q}`, { as: "blob" });
        gif.set(r.blob); gif.el.hidden = false;
        gifLink.href = gif.url; gifLink.hidden = false;
        gifLink.setAttribute("download", `${run.name}-${state.seed}-to-${clampSeed(toSeed.value)}.gif`);
      } catch (e) { toast(e.message); } finally { gifBtn.disabled = false; gifBtn.textContent = "Animate"; }
    });

    generate();
    return () => {
      clearTimeout(debounce); if (ctrl) ctrl.abort();
      img.dispose(); gif.dispose(); if (mixImg) mixImg.dispose();
      disposers.forEach((d) => d());
    };
  }

  const caps = (run) => run.capabilities || {};

  function translateView(run, base) {
    const dirs = caps(run).directions || ["AtoB"];
    const domains = run.domains || [];
    let dirSel = null;
    const controls = [];
    if (dirs.length > 1) {
      const label = (d) => (domains.length === 2 ? (d === "AtoB" ? `${domains[0]} → ${domains[1]}` : `${domains[1]} → ${domains[0]}`) : d.replace("to", " → "));
      dirSel = h("select", { id: "direction", "aria-label": "direction" }, dirs.map((d) => h("option", { value: d }, label(d))));
      controls.push(field("Direction", dirSel));
    }
    const file = h("input", { type: "file", accept: "image/png,image/jpeg,image/webp,image/bmp,image/gif,image/tiff", hidden: true, id: "upload" });
    const inImg = new BlobImage({ alt: "input image" });
    const outImg = new BlobImage({ alt: "output image", id: "translated" });
    const drop = h("div", { class: "drop", tabindex: "0", role: "button", "aria-label": "choose an image" },
      h("span", {}, "Drop an image here", h("br"), "or click to choose one", h("br"), h("small", {}, "PNG or JPEG, up to 10 MB and 4096 px")));
    const out = h("div", { class: "out" }, h("span", {}, "The output appears here"));
    const download = h("a", { class: "btn", download: "", hidden: true }, "Download PNG");
    const caption = h("div", { class: "caption" });
    let current = null, ctrl = null;

    async function translate() {
      if (!current) return;
      if (ctrl) ctrl.abort();
      ctrl = new AbortController();
      const fd = new FormData();
      fd.append("image", current, current.name || "image.png");
      if (dirSel) fd.append("direction", dirSel.value);
      out.classList.add("busy");
      caption.textContent = "Translating…";
      const t0 = performance.now();
      try {
        const r = await api(`${base}/translate`, { method: "POST", body: fd, as: "blob", signal: ctrl.signal });
        outImg.set(r.blob);
        out.replaceChildren(outImg.el);
        download.href = outImg.url; download.hidden = false;
        download.setAttribute("download", `${run.name}-${(current.name || "image").replace(/\.[^.]+$/, "")}.png`);
        caption.textContent = `${Math.round(performance.now() - t0)} ms · checkpoint ${fmtStep(Number(r.headers.get("X-Ganforge-Step") || run.checkpoint_step))}`;
      } catch (e) {
        if (!isAbort(e)) { toast(e.message); caption.textContent = ""; }
      }
    }
    function take(f) {
      if (!f) return;
      if (f.size > MAX_UPLOAD) { toast(`${f.name} is ${(f.size / 2 ** 20).toFixed(1)} MB; the limit is 10 MB`); return; }
      current = f;
      inImg.set(f);
      drop.replaceChildren(inImg.el);
      translate();
    }
    drop.addEventListener("click", () => file.click());
    drop.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); file.click(); } });
    file.addEventListener("change", () => take(file.files[0]));
    drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (ev) => { ev.preventDefault(); drop.classList.remove("over"); take(ev.dataTransfer.files[0]); });
    if (dirSel) dirSel.addEventListener("change", translate);

    // One-click examples: the run's own preview inputs (from its dataset), so the page is never empty.
    const thumbs = [];
    const examples = h("div", { class: "examples", id: "examples", hidden: true });
    async function loadExamples() {
      let list;
      try { list = await api(`${base}/examples`); } catch (e) { return; } // no examples: the upload still works
      if (!list.examples || !list.examples.length) return;
      const buttons = [];
      for (const ex of list.examples) {
        const img = new BlobImage({ alt: `example ${ex.index + 1}` });
        thumbs.push(img);
        const label = dirSel && ex.direction !== dirs[0] ? ` (${ex.direction.replace("to", " → ")})` : "";
        const btn = h("button", { type: "button", class: "example", "data-index": ex.index, title: `Use example ${ex.index + 1}${label}`,
          onclick: async () => {
            try {
              const r = await api(ex.url, { as: "blob" });
              if (dirSel && dirs.includes(ex.direction)) dirSel.value = ex.direction;
              take(new File([r.blob], `example-${ex.index + 1}.png`, { type: "image/png" }));
            } catch (e) { if (!isAbort(e)) toast(e.message); }
          } }, img.el);
        buttons.push(btn);
        api(ex.url, { as: "blob" }).then((r) => img.set(r.blob)).catch(() => btn.remove());
      }
      fill(examples, h("span", { class: "muted" }, "Or try one of the run's own inputs:"), buttons);
      examples.hidden = false;
    }
    loadExamples();

    const what = run.family === "srgan" ? "Enhance an image" : "Translate an image";
    view.replaceChildren(
      h("div", { class: "pagehead" }, h("h1", {}, run.name), badge(run.status),
        h("div", { class: "facts" }, h("span", {}, h("b", {}, run.family), " · " + (run.resolution || "?") + " px"),
          h("span", {}, "checkpoint ", h("b", {}, fmtStep(run.checkpoint_step))))),
      h("section", { class: "panel" }, h("h2", {}, what), controls,
        h("div", { class: "pair" }, h("figure", {}, h("figcaption", {}, "Input"), drop), h("figure", {}, h("figcaption", {}, "Output"), out)),
        examples,
        h("div", { class: "row", style: "margin-top:.8rem" }, download, caption), file));
    return () => { if (ctrl) ctrl.abort(); inImg.dispose(); outImg.dispose(); thumbs.forEach((t) => t.dispose()); };
  }


  // ---- attack page: adversarial examples against a classifier or a run's discriminator -----------
  const pct = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(1) + " %");

  async function attackView(qs) {
    setCrumbs(h("a", { href: "#/" }, "runs"), h("b", {}, "adversarial examples"));
    const info = await api("/api/attack/models");
    const models = info.models || [];
    const state = {
      model: models.some((m) => m.id === qs.get("model")) ? qs.get("model") : (models[0] || {}).id,
      method: (info.methods || []).includes(qs.get("method")) ? qs.get("method") : "pgd",
      norm: (info.norms || []).includes(qs.get("norm")) ? qs.get("norm") : "linf",
      eps: qs.get("eps"),
    };
    const modelSel = h("select", { id: "attack-model", "aria-label": "model" },
      models.map((m) => h("option", { value: m.id, title: m.note || "" }, m.label)));
    modelSel.value = state.model;
    const modelNote = h("p", { class: "muted small" });
    const methodSel = h("select", { id: "attack-method", "aria-label": "method" },
      h("option", { value: "pgd" }, "PGD, 20 steps"), h("option", { value: "fgsm" }, "FGSM, one step"));
    methodSel.value = state.method;
    const normSel = h("select", { id: "attack-norm", "aria-label": "norm" },
      h("option", { value: "linf" }, "L∞: each pixel by at most ε"), h("option", { value: "l2" }, "L2: the whole change by at most ε"));
    normSel.value = state.norm;
    const eps = h("input", { type: "range", id: "eps", "aria-label": "epsilon" });
    const epsOut = h("output", { id: "eps-out" });
    function setNorm(norm, value) {
      if (norm === "linf") { eps.min = 0; eps.max = 16; eps.step = 1; } else { eps.min = 0; eps.max = 2; eps.step = 0.05; }
      const v = Number(value);
      eps.value = value !== null && value !== undefined && value !== "" && Number.isFinite(v) && v >= 0 && v <= Number(eps.max) ? v : (norm === "linf" ? 8 : 0.5);
      showEps();
    }
    const showEps = () => { epsOut.textContent = normSel.value === "linf" ? `${eps.value}/255` : Number(eps.value).toFixed(2); };
    setNorm(state.norm, state.eps);

    const file = h("input", { type: "file", accept: "image/png,image/jpeg,image/webp,image/bmp,image/gif,image/tiff", hidden: true, id: "attack-upload" });
    const inImg = new BlobImage({ alt: "your image" });
    const drop = h("div", { class: "drop small-drop", tabindex: "0", role: "button", "aria-label": "choose an image", id: "attack-drop" },
      h("span", {}, "Drop an image here", h("br"), "or click to choose one", h("br"), h("small", {}, "PNG or JPEG, up to 10 MB")));
    const exampleBtn = h("button", { class: "btn", type: "button", id: "attack-example" }, "A held-out example");
    const controls = h("section", { class: "panel controls attack-controls" },
      field("Model", modelSel), modelNote, field("Method", methodSel), field("Norm", normSel), field("Budget ε", eps, epsOut),
      field("Image", drop), h("div", { class: "row" }, exampleBtn), file);

    // Stage: clean | perturbation | adversarial, each with its prediction.
    const pane = (title, id, alt) => {
      const img = h("img", { id, alt });
      const cap = h("figcaption", { class: "pred" });
      return { img, cap, el: h("figure", { class: "attack-cell" }, h("div", { class: "attack-title" }, title), h("div", { class: "frame" }, img), cap) };
    };
    const clean = pane("Clean", "attack-clean", "clean image");
    const pert = pane("Perturbation ×10", "attack-pert", "perturbation, ten times, around grey");
    const adv = pane("Adversarial", "attack-adv", "adversarial image");
    const verdict = h("div", { class: "verdict", id: "attack-verdict" }, "Choose an image or a held-out example.");
    const stats = h("div", { class: "facts attack-stats", id: "attack-stats" });
    const stage = h("div", { class: "attack-stage" }, h("div", { class: "triple" }, clean.el, pert.el, adv.el), verdict, stats);
    stage.hidden = false;

    view.replaceChildren(
      h("div", { class: "pagehead" }, h("h1", {}, "Adversarial examples"),
        h("span", { class: "muted" }, "A change too small to see, found by following the model's gradient, can change its answer.")),
      h("div", { class: "play" }, controls, stage));

    let source = null; // {file} or {example: index}
    let ctrl = null, debounce = 0, seq = 0;
    function remember() {
      const q = new URLSearchParams({ model: modelSel.value, method: methodSel.value, norm: normSel.value, eps: String(eps.value) });
      history.replaceState(null, "", `#/attack?${q}`);
    }
    function showModelNote() {
      const m = models.find((x) => x.id === modelSel.value);
      modelNote.textContent = m && m.note ? m.note : "";
    }
    showModelNote();

    async function run() {
      remember();
      if (!source) return;
      if (ctrl) ctrl.abort();
      ctrl = new AbortController();
      const mine = ++seq;
      const fd = new FormData();
      fd.append("model", modelSel.value);
      fd.append("method", methodSel.value);
      fd.append("norm", normSel.value);
      fd.append("eps", String(eps.value));
      if (source.file) fd.append("image", source.file, source.file.name || "image.png");
      else fd.append("example", String(source.example));
      stage.classList.add("busy");
      const t0 = performance.now();
      try {
        const r = await api("/api/attack", { method: "POST", body: fd, signal: ctrl.signal });
        if (mine !== seq) return;
        clean.img.src = r.images.clean; pert.img.src = r.images.perturbation; adv.img.src = r.images.adversarial;
        fill(clean.cap, h("b", {}, r.clean_pred), " ", pct(r.clean_conf));
        fill(pert.cap, "L∞ ", h("b", {}, `${r.linf_255.toFixed(1)}/255`), " · L2 ", h("b", {}, fmt(r.l2)));
        fill(adv.cap, h("b", {}, r.adv_pred), " ", pct(r.adv_conf));
        verdict.className = "verdict " + (r.flipped ? "flipped" : "held");
        verdict.dataset.flipped = r.flipped ? "1" : "0";
        fill(verdict, r.flipped ? `flipped: ${r.clean_pred} → ${r.adv_pred}` : `held: still ${r.adv_pred}`);
        const size = r.reduced_from ? `${r.size[0]}×${r.size[1]} px (reduced from ${r.reduced_from[0]}×${r.reduced_from[1]})` : `${r.size[0]}×${r.size[1]} px`;
        fill(stats, h("span", {}, r.method.toUpperCase(), " ", r.norm === "linf" ? "L∞" : "L2", " ε ", h("b", {}, r.eps_label)),
          h("span", {}, r.label_source === "true" ? "true class " : "label (clean prediction) ", h("b", {}, r.label)),
          h("span", {}, r.success ? "attack succeeded" : "attack failed"), h("span", {}, size),
          h("span", {}, `${Math.round(performance.now() - t0)} ms`));
      } catch (e) {
        if (!isAbort(e)) toast(e.message);
      } finally {
        if (mine === seq) stage.classList.remove("busy");
      }
    }
    const schedule = () => { clearTimeout(debounce); debounce = setTimeout(run, 150); };

    function take(f) {
      if (!f) return;
      if (f.size > MAX_UPLOAD) { toast(`${f.name} is ${(f.size / 2 ** 20).toFixed(1)} MB; the limit is 10 MB`); return; }
      source = { file: f };
      inImg.set(f);
      drop.replaceChildren(inImg.el);
      run();
    }
    async function example() {
      exampleBtn.disabled = true;
      try {
        const r = await api(`/api/attack/example?model=${enc(modelSel.value)}`);
        source = { example: r.index };
        drop.replaceChildren(h("img", { src: r.png, alt: `example ${r.index}: ${r.label}` }));
        drop.title = `example ${r.index} of ${r.count} (${r.note}); class ${r.label}`;
        run();
      } catch (e) { if (!isAbort(e)) toast(e.message); } finally { exampleBtn.disabled = false; }
    }
    drop.addEventListener("click", () => file.click());
    drop.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); file.click(); } });
    file.addEventListener("change", () => take(file.files[0]));
    drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (ev) => { ev.preventDefault(); drop.classList.remove("over"); take(ev.dataTransfer.files[0]); });
    exampleBtn.addEventListener("click", example);
    modelSel.addEventListener("change", () => {
      showModelNote();
      if (source && source.example !== undefined) example(); // an example belongs to its model's data
      else run();
    });
    methodSel.addEventListener("change", run);
    normSel.addEventListener("change", () => { setNorm(normSel.value, null); run(); });
    eps.addEventListener("input", () => { showEps(); schedule(); });
    return () => { clearTimeout(debounce); if (ctrl) ctrl.abort(); inImg.dispose(); };
  }

  // ---- curate view: generate many images, score them, keep the best -------------------------------
  async function curateView(name, qs) {
    const base = `/api/runs/${enc(name)}`;
    const run = await api(base);
    setCrumbs(h("a", { href: "#/" }, "runs"), h("a", { href: "#/run/" + enc(run.name) }, run.name), h("b", {}, "curate"));
    const info = await api(`${base}/curate/scorers`);
    const wanted = (qs.get("by") || "sharpness,iqa").split(",").filter(Boolean);
    const boxes = new Map();
    let classSel = null;
    const list = [];
    for (const s of info.scorers || []) {
      const box = h("input", { type: "checkbox", value: s.name, disabled: !s.available, "data-scorer": s.name,
        checked: s.available && wanted.some((w) => w === s.name || w.startsWith(s.name + ":")) });
      boxes.set(s.name, box);
      let extra = null;
      if (s.takes === "class") {
        const classes = info.classes || [];
        const pre = (wanted.find((w) => w.startsWith("classifier:")) || "").slice("classifier:".length);
        classSel = classes.length
          ? h("select", { "aria-label": "class", id: "curate-class" }, classes.map((c, i) => h("option", { value: String(i) }, `${i}: ${c}`)))
          : h("input", { type: "text", "aria-label": "class", id: "curate-class", placeholder: "class name or index", size: 10 });
        if (pre) classSel.value = pre;
        extra = classSel;
      }
      list.push(h("label", { class: "scorer" + (s.available ? "" : " off"), title: s.why || "" }, box, " ", h("span", {}, s.name), extra ? " " : null, extra,
        s.why ? h("small", { class: "muted" }, s.why) : null));
    }
    const drs = boxes.get("drs");
    for (const [n, b] of boxes) {
      b.addEventListener("change", () => {
        if (!b.checked) return;
        if (n === "drs") boxes.forEach((o, m) => { if (m !== "drs") o.checked = false; });
        else if (drs) drs.checked = false;
      });
    }
    const lim = info.limits || { num: 512, keep: 64 };
    const clampInt = (v, lo, hi, d) => { const n = Math.floor(Number(v)); return Number.isFinite(n) && n >= lo && n <= hi ? n : d; };
    const num = h("input", { type: "number", min: 1, max: lim.num, step: 1, value: clampInt(qs.get("num"), 1, lim.num, 128), id: "curate-num", "aria-label": "images generated" });
    const keep = h("input", { type: "number", min: 1, max: lim.keep, step: 1, value: clampInt(qs.get("keep"), 1, lim.keep, 16), id: "curate-keep", "aria-label": "images kept" });
    const go = h("button", { class: "btn primary", type: "button", id: "curate-go" }, "Curate");
    const controls = h("section", { class: "panel controls" }, h("h2", {}, "Score by"), h("div", { class: "scorers" }, list),
      field(`Generate (seeds 0…n−1, at most ${lim.num})`, num), field(`Keep the best (at most ${lim.keep})`, keep), go,
      h("p", { class: "muted hint" }, "Several scorers: each ranks the images and the mean rank decides. drs: discriminator rejection sampling, alone."));
    const summary = h("div", { id: "curate-summary" }, h("p", { class: "muted" }, "Choose scorers and press Curate."));
    const grid = h("div", { class: "kept-grid", id: "curate-grid" });
    const results = h("section", { class: "panel curate-results" }, h("h2", {}, "Kept images, best first"), summary, grid);
    view.replaceChildren(
      h("div", { class: "pagehead" }, h("h1", {}, run.name), badge(run.status),
        h("div", { class: "facts" }, h("span", {}, h("b", {}, run.family), " · " + (run.resolution || "?") + " px"),
          h("span", {}, "checkpoint ", h("b", {}, fmtStep(run.checkpoint_step))))),
      h("div", { class: "play" }, controls, results));

    let ctrl = null;
    function chosen() {
      const out = [];
      for (const [n, b] of boxes) {
        if (!b.checked) continue;
        if (n === "classifier") {
          const c = classSel ? classSel.value.trim() : "";
          if (!c) { toast("classifier: choose the class whose confidence to score"); return null; }
          out.push("classifier:" + c);
        } else out.push(n);
      }
      return out;
    }
    async function curate() {
      const by = chosen();
      if (by === null) return;
      if (!by.length) { toast("choose at least one scorer"); return; }
      if (ctrl) ctrl.abort();
      ctrl = new AbortController();
      const q = new URLSearchParams({ by: by.join(","), num: num.value, keep: keep.value });
      history.replaceState(null, "", `#/run/${enc(run.name)}/curate?${q}`);
      go.disabled = true; go.textContent = "Scoring…";
      results.classList.add("busy");
      const t0 = performance.now();
      try {
        const r = await api(`${base}/curate?${q}`, { signal: ctrl.signal });
        const names = Object.keys(r.scorers || {});
        const rows = names.map((n) => {
          const s = r.scorers[n];
          const up = s.after_mean !== null && s.before_mean !== null ? s.after_mean - s.before_mean : null;
          return h("tr", {}, h("td", {}, n), h("td", { class: "mono" }, fmt(s.before_mean)), h("td", { class: "mono" }, fmt(s.after_mean)),
            h("td", { class: "mono " + (up > 0 ? "up" : up < 0 ? "down" : "") }, up === null ? "–" : (up > 0 ? "+" : "") + fmt(up)));
        });
        fill(summary,
          h("p", {}, `Kept ${r.kept.length} of ${r.num} images`, r.method === "drs" ? ` (DRS accepted ${pct(r.accepted_fraction)})` : ` by ${r.by.join(" + ")}`,
            ` · step ${fmtStep(r.step)} · ${Math.round(performance.now() - t0)} ms`),
          h("table", { class: "scores-table" }, h("thead", {}, h("tr", {}, h("th", {}, "scorer"), h("th", {}, "mean before"), h("th", {}, "mean after"), h("th", {}, "change"))),
            h("tbody", {}, rows)));
        fill(grid, r.kept.map((k) => h("a", { class: "kept", href: `#/play/${enc(run.name)}?seed=${k.seed}`, title: `open seed ${k.seed} in the playground`, "data-seed": k.seed },
          h("img", { src: k.png, alt: `seed ${k.seed}` }),
          h("span", { class: "mono" }, `#${k.rank + 1} · seed ${k.seed}`),
          Object.entries(k.scores).map(([n, v]) => h("small", { class: "mono" }, `${n} ${fmt(v)}`)))));
        grid.dataset.count = String(r.kept.length);
      } catch (e) {
        if (!isAbort(e)) toast(e.message);
      } finally {
        go.disabled = false; go.textContent = "Curate";
        results.classList.remove("busy");
      }
    }
    go.addEventListener("click", curate);
    if (qs.get("by")) curate();
    return () => { if (ctrl) ctrl.abort(); };
  }

  window.addEventListener("hashchange", route);
  route();
})();
