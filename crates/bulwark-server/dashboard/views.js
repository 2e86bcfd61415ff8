// The views: overview, traces (list and virtualised waterfall), checkpoints and runs (chain,
// JSON tree, diff, run timeline). Each view returns { stop } to end its timers and listeners.
import { h, api, mutate, onEvent, history, showError } from "./app.js";

const WINDOW_MS = 15 * 60 * 1000;
const ROW = 22;
const label = (s) => String(s || "unknown").toUpperCase();
const badge = (s) => h("span", { class: `badge s-${s}` }, label(s));
const ms = (n) => (n < 1 ? `${n.toFixed(2)} ms` : n < 1000 ? `${n.toFixed(1)} ms` : `${(n / 1000).toFixed(2)} s`);
const when = (t) => new Date(t).toLocaleTimeString();
const section = (title, ...body) => h("section", {}, h("h2", {}, title), ...body);
const table = (head, rows, attrs = {}) =>
  h("div", { class: "table-wrap" }, h("table", attrs, h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, rows)));

// ---------- overview ----------

function breakerTimeline(name, state, now) {
  const events = history.filter((e) => e.kind === "breaker" && e.name === name && e.time_ms >= now - WINDOW_MS);
  let s = events.length ? events[0].data.from : state;
  let t = now - WINDOW_MS;
  const bands = [];
  for (const e of events) { bands.push([t, e.time_ms, s]); s = e.data.to; t = e.time_ms; }
  bands.push([t, now, s]);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "timeline"); svg.setAttribute("viewBox", "0 0 1000 10"); svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `last 15 minutes: ${bands.map((b) => `${label(b[2])} from ${when(b[0])}`).join(", ")}`);
  for (const [i, [a, b, st]] of bands.entries()) {
    const r = document.createElementNS(svg.namespaceURI, "rect");
    // The present state stays visible (at least 3% wide) even when it began a second ago.
    const x = Math.min(((a - (now - WINDOW_MS)) / WINDOW_MS) * 1000, i === bands.length - 1 ? 970 : 1000);
    r.setAttribute("x", x); r.setAttribute("width", i === bands.length - 1 ? 1000 - x : Math.max(((b - a) / WINDOW_MS) * 1000, 1));
    r.setAttribute("y", 0); r.setAttribute("height", 10); r.setAttribute("class", `band-${st}`);
    const title = document.createElementNS(svg.namespaceURI, "title"); title.textContent = `${label(st)} ${when(a)}–${when(b)}`;
    r.append(title); svg.append(r);
  }
  return svg;
}

function chart(points, { label: name, unit, second }) {
  if (points.length === 1) points = [points[0], points[0]];
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "chart"); svg.setAttribute("viewBox", "0 0 300 100"); svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  const last = points.at(-1);
  svg.setAttribute("aria-label", `${name}: ${last ? `${last[1].toFixed(2)} ${unit}` : "no data yet"}`);
  const max = Math.max(1e-9, ...points.map((p) => Math.max(p[1], p[2] ?? 0)));
  const line = (idx, cls) => {
    const pl = document.createElementNS(svg.namespaceURI, "polyline");
    pl.setAttribute("class", cls);
    pl.setAttribute("points", points.map((p, i) => `${(i / Math.max(points.length - 1, 1)) * 300},${95 - (p[idx] / max) * 85}`).join(" "));
    svg.append(pl);
  };
  const axis = document.createElementNS(svg.namespaceURI, "line");
  axis.setAttribute("class", "axis"); axis.setAttribute("x1", 0); axis.setAttribute("x2", 300); axis.setAttribute("y1", 95); axis.setAttribute("y2", 95);
  svg.append(axis);
  line(1, "line"); if (second) line(2, "line2");
  const t = document.createElementNS(svg.namespaceURI, "text"); t.setAttribute("x", 2); t.setAttribute("y", 9);
  t.textContent = `max ${max.toFixed(2)} ${unit}`; svg.append(t);
  return h("div", { class: "card" }, h("div", {}, name, last ? h("span", { class: "muted" }, ` — now ${last[1].toFixed(2)} ${unit}${second ? ` / ${second} ${last[2].toFixed(2)} ${unit}` : ""}`) : null), svg);
}

function quantile(buckets, count, q) {
  if (!count) return 0;
  const want = q * count;
  let prevLe = 0, prevCount = 0;
  for (const b of buckets) {
    if (b.count >= want) {
      const span = b.count - prevCount || 1;
      return prevLe + ((b.le - prevLe) * (want - prevCount)) / span;
    }
    prevLe = b.le; prevCount = b.count;
  }
  return prevLe;
}

function sumHistogram(metric) {
  const out = { count: 0, buckets: null };
  for (const s of metric?.series || []) {
    out.count += s.count;
    if (!out.buckets) out.buckets = s.buckets.map((b) => ({ le: b.le, count: 0 }));
    s.buckets.forEach((b, i) => { out.buckets[i].count += b.count; });
  }
  return out;
}

export async function overview(main) {
  const health = h("div", { class: "grid", id: "health" });
  const breakers = h("div", { id: "breakers" });
  const limiters = h("div", { id: "limiters" });
  const charts = h("div", { class: "grid", id: "charts" });
  const alerts = section("Firing alerts", h("div", { id: "alerts" }));
  alerts.hidden = true;
  main.append(
    section("Health", health),
    section("Circuit breakers", breakers),
    section("Rate limiters", limiters),
    section("Requests", charts, h("p", {}, h("button", { type: "button", class: "danger", onclick: () => mutate("Reset every metric to zero?", "metrics/reset", { method: "POST" }) }, "Reset metrics"))),
    alerts,
  );
  const samples = [];
  let prev = null;

  async function drawBreakers() {
    const data = await api("circuit-breakers");
    const now = Date.now();
    breakers.replaceChildren(table(["Breaker", "State", "Last 15 min", "Failure rate", "Rejected", "Next trial", ""],
      data.circuit_breakers.map((b) => {
        const calls = b.successes + b.failures;
        return h("tr", { "data-breaker": b.name },
          h("td", {}, b.name), h("td", { class: "state" }, badge(b.state)),
          h("td", {}, breakerTimeline(b.name, b.state, now)),
          h("td", {}, calls ? `${((b.failures / calls) * 100).toFixed(0)}% of ${calls}` : "no calls"),
          h("td", {}, b.rejected),
          h("td", {}, b.next_trial_in_ms == null ? "—" : `in ${ms(b.next_trial_in_ms)}`),
          h("td", {}, h("button", { type: "button", onclick: async () => { if (await mutate(`Reset breaker ${b.name} to CLOSED?`, `circuit-breakers/${encodeURIComponent(b.name)}/reset`, { method: "POST" })) drawBreakers(); } }, "Reset")));
      }), { "aria-label": "circuit breakers" }));
    if (!data.circuit_breakers.length) breakers.replaceChildren(h("p", { class: "muted" }, "No breakers yet."));
  }

  async function drawRest() {
    const [hs, rl, metrics] = await Promise.all([api("health"), api("rate-limiters"), api("metrics")]);
    health.replaceChildren(...Object.entries(hs.components).map(([name, c]) =>
      h("div", { class: "card" }, h("strong", {}, name.replace(/_/g, " ")), " ", badge(c.status), h("div", { class: "muted" }, c.detail))));
    const byName = Object.fromEntries(metrics.metrics.map((m) => [m.name, m]));
    const counter = (name, lim) => (byName[name]?.series || []).filter((s) => s.labels.name === lim).reduce((a, s) => a + s.value, 0);
    const since = Date.now() - 60_000;
    limiters.replaceChildren(table(["Limiter", "Kind", "Capacity", "Admitted", "Rejected", "Top rejected keys (last minute)"],
      rl.rate_limiters.map((l) => {
        const keys = {};
        for (const e of history) if (e.kind === "limiter" && e.name === l.name && e.time_ms >= since) keys[e.data.key ?? "—"] = (keys[e.data.key ?? "—"] || 0) + e.data.count;
        const top = Object.entries(keys).sort((a, b) => b[1] - a[1]).slice(0, 3);
        return h("tr", {}, h("td", {}, l.name), h("td", {}, l.kind), h("td", {}, l.capacity),
          h("td", {}, counter("bulwark_ratelimit_allowed_total", l.name)), h("td", {}, counter("bulwark_ratelimit_rejected_total", l.name)),
          h("td", {}, top.length ? top.map(([k, n]) => `${k}: ${n}`).join(", ") : "none"));
      })));
    const total = (byName.bulwark_http_requests_total?.series || []).reduce((a, s) => a + s.value, 0);
    const hist = sumHistogram(byName.bulwark_http_request_duration_seconds);
    const now = Date.now();
    if (prev && hist.buckets && prev.hist.buckets && total >= prev.total) {
      const dt = (now - prev.at) / 1000;
      const diff = hist.buckets.map((b, i) => ({ le: b.le, count: b.count - prev.hist.buckets[i].count }));
      const n = hist.count - prev.hist.count;
      samples.push([now, (total - prev.total) / dt, quantile(diff, n, 0.5) * 1000, quantile(diff, n, 0.99) * 1000]);
      if (samples.length > 120) samples.shift();
    }
    prev = { at: now, total, hist };
    charts.replaceChildren(
      chart(samples.map((s) => [s[0], s[1]]), { label: "Request rate", unit: "req/s" }),
      chart(samples.map((s) => [s[0], s[2], s[3]]), { label: "Latency p50", unit: "ms", second: "p99" }));
    try {
      const a = await api("alerts");
      const firing = (a.alerts || []).filter((x) => (x.state || x.status) === "firing");
      alerts.hidden = false;
      document.getElementById("alerts").replaceChildren(firing.length
        ? table(["Alert", "Since", "Summary"], firing.map((x) => h("tr", {}, h("td", {}, x.name || x.rule), h("td", {}, x.since || x.active_since || ""), h("td", {}, x.summary || x.message || ""))))
        : h("p", { class: "muted" }, "No alert is firing."));
    } catch { alerts.hidden = true; }
  }

  await Promise.all([drawBreakers(), drawRest()]);
  let pending = false;
  const off = onEvent((e) => {
    if ((e.kind === "breaker" || e.kind === "reset") && !pending) {
      pending = true;
      setTimeout(() => { pending = false; drawBreakers().catch((x) => showError(x.message)); }, 50);
    }
  });
  const timers = [setInterval(() => drawRest().catch((x) => showError(x.message)), 2000), setInterval(() => drawBreakers().catch(() => {}), 5000)];
  return { stop() { off(); timers.forEach(clearInterval); } };
}

// ---------- traces ----------

export async function traces(main, [traceId]) {
  if (traceId) return waterfallView(main, traceId);
  const name = h("input", { type: "search", name: "name", "aria-label": "name contains" });
  const status = h("select", { name: "status" }, h("option", { value: "" }, "any"), h("option", { value: "true" }, "error"), h("option", { value: "false" }, "ok"));
  const minDur = h("input", { type: "number", min: 0, name: "min_duration_ms", style: "width:7rem" });
  const list = h("div", { id: "trace-list" });
  const load = async () => {
    const q = new URLSearchParams({ limit: 100 });
    if (name.value) q.set("name", name.value);
    if (status.value) q.set("has_error", status.value);
    if (minDur.value) q.set("min_duration_ms", minDur.value);
    const data = await api(`traces?${q}`);
    list.replaceChildren(table(["Trace", "Started", "Duration", "Status", "Spans"], data.traces.map((t) =>
      h("tr", { "data-trace": t.trace_id },
        h("td", {}, h("a", { href: `#/traces/${t.trace_id}` }, t.root_name)),
        h("td", {}, when(t.start_unix_nanos / 1e6)), h("td", {}, ms(t.duration_nanos / 1e6)),
        h("td", {}, badge(t.has_error ? "error" : "ok")), h("td", {}, t.span_count))), { "aria-label": "traces" }));
  };
  const form = h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); load().catch((x) => showError(x.message)); } },
    h("label", {}, "Name", name), h("label", {}, "Status", status), h("label", {}, "Min duration (ms)", minDur), h("button", { type: "submit" }, "Filter"));
  main.append(section("Recent traces", form, list));
  await load();
  const timer = setInterval(() => load().catch(() => {}), 5000);
  return { stop() { clearInterval(timer); } };
}

/** Depth-first rows of a trace tree, children by start time. */
export function flatten(roots) {
  const rows = [];
  const walk = (node, depth) => {
    rows.push({ node, depth });
    for (const c of [...(node.children || [])].sort((a, b) => a.start_unix_nanos - b.start_unix_nanos)) walk(c, depth + 1);
  };
  for (const r of roots) walk(r, 0);
  return rows;
}

function waterfall(rows, { marks = [], onSelect } = {}) {
  const nowNs = Date.now() * 1e6;
  const start = Math.min(...rows.map((r) => r.node.start_unix_nanos), ...marks.map((m) => m.at));
  const end = Math.max(...rows.map((r) => r.node.end_unix_nanos ?? nowNs), ...marks.map((m) => m.at));
  const span = Math.max(end - start, 1);
  const pct = (t) => `${((t - start) / span) * 100}%`;
  const box = h("div", { class: "waterfall", role: "tree", "aria-label": `${rows.length} spans`, tabindex: 0, style: `height:min(60vh, ${rows.length * ROW + 4}px)` });
  const inner = h("div", { class: "wf-inner", style: `height:${rows.length * ROW}px` });
  box.append(inner);
  let selected = -1;
  const render = () => {
    const first = Math.max(0, Math.floor(box.scrollTop / ROW) - 10);
    const last = Math.min(rows.length, first + Math.ceil((box.clientHeight || 600) / ROW) + 20);
    inner.replaceChildren();
    for (let i = first; i < last; i++) {
      const { node, depth } = rows[i];
      const open = node.end_unix_nanos == null;
      const err = node.status?.code === "ERROR";
      const dur = ((node.end_unix_nanos ?? nowNs) - node.start_unix_nanos) / 1e6;
      const bar = h("div", { class: `wf-bar${err ? " err" : ""}${open ? " open-bar" : ""}`, style: `left:${pct(node.start_unix_nanos)};width:${(((node.end_unix_nanos ?? nowNs) - node.start_unix_nanos) / span) * 100}%`, title: `${node.name} ${ms(dur)}${err ? " ERROR" : ""}${open ? " (running)" : ""}` });
      const track = h("div", { class: "wf-track" }, bar);
      if (i === 0) for (const m of marks) track.append(h("div", { class: `wf-mark${m.cp ? " cp" : ""}`, style: `left:${pct(m.at)}`, title: m.title, onclick: m.onclick }));
      inner.append(h("div", { class: `wf-row${i === selected ? " selected" : ""}`, role: "treeitem", "aria-level": depth + 1, "aria-selected": i === selected ? "true" : "false", "data-span": node.span_id, "data-depth": depth, "data-parent": node.parent_span_id || "", style: `top:${i * ROW}px`, onclick: () => { selected = i; render(); onSelect?.(node); } },
        h("div", { class: "wf-name", style: `padding-left:${depth * 12 + 4}px` }, `${node.name}${err ? " ✗ ERROR" : ""}${open ? " ⋯ running" : ""}`, h("span", { class: "muted" }, ` ${ms(dur)}`)),
        track));
    }
  };
  box.addEventListener("scroll", () => requestAnimationFrame(render));
  box.addEventListener("keydown", (e) => {
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp" && e.key !== "Enter") return;
    e.preventDefault();
    if (e.key === "Enter") { if (selected >= 0) onSelect?.(rows[selected].node); return; }
    selected = Math.max(0, Math.min(rows.length - 1, selected + (e.key === "ArrowDown" ? 1 : -1)));
    if (selected * ROW < box.scrollTop || selected * ROW > box.scrollTop + box.clientHeight - ROW) box.scrollTop = selected * ROW - box.clientHeight / 2;
    render(); onSelect?.(rows[selected].node);
  });
  requestAnimationFrame(render);
  render();
  return box;
}

function spanDetails(target, node) {
  const attrs = Object.entries(node.attributes || {});
  const tokens = attrs.filter(([k]) => k.startsWith("gen_ai.usage"));
  target.replaceChildren(h("div", { class: "card details" },
    h("h2", {}, node.name, " ", badge(node.status?.code === "ERROR" ? "error" : "ok")),
    node.status?.message ? h("p", {}, node.status.message) : null,
    tokens.length ? h("p", {}, "Tokens: ", tokens.map(([k, v]) => `${k.replace("gen_ai.usage.", "")} ${v}`).join(", ")) : null,
    table(["Attribute", "Value"], attrs.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, JSON.stringify(v))))),
    h("h2", {}, "Events"),
    (node.events || []).length ? table(["Time", "Event", "Attributes"], node.events.map((e) => h("tr", {}, h("td", {}, when(e.time_unix_nanos / 1e6)), h("td", {}, e.name), h("td", {}, JSON.stringify(e.attributes))))) : h("p", { class: "muted" }, "none")));
}

async function waterfallView(main, traceId) {
  const t0 = performance.now();
  const data = await api(`traces/${encodeURIComponent(traceId)}`);
  const rows = flatten(data.roots);
  const details = h("div", { id: "span-details" });
  const runSpan = rows.find((r) => r.node.name === "workflow.run");
  const workflowId = runSpan?.node.attributes?.["workflow.id"];
  main.append(section(`Trace ${data.summary.root_name}`,
    h("p", { class: "muted" }, `${rows.length} spans, ${ms(data.summary.duration_nanos / 1e6)} `, workflowId ? h("a", { href: `#/checkpoints/${encodeURIComponent(workflowId)}/${traceId}` }, "open the run's timeline") : null),
    waterfall(rows, { onSelect: (n) => spanDetails(details, n) }), details));
  main.dataset.renderMs = String(performance.now() - t0);
}

// ---------- checkpoints and runs ----------

function jsonTree(value, key) {
  const k = key === undefined ? null : h("span", { class: "k" }, `${key}: `);
  if (value && typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    return h("details", { open: true }, h("summary", {}, k, Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`), entries.map(([ck, cv]) => jsonTree(cv, ck)));
  }
  return h("div", { class: "leaf" }, k, JSON.stringify(value));
}

/** Paths whose values differ between a and b. */
export function diff(a, b, path = "$", out = []) {
  if (a && b && typeof a === "object" && typeof b === "object") {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (!(k in a)) out.push(["add", `${path}.${k}`, undefined, b[k]]);
      else if (!(k in b)) out.push(["del", `${path}.${k}`, a[k], undefined]);
      else diff(a[k], b[k], `${path}.${k}`, out);
    }
  } else if (JSON.stringify(a) !== JSON.stringify(b)) out.push(["chg", path, a, b]);
  return out;
}

async function runControls() {
  try { await api("/api/workflows/runs"); return true; } catch { return false; }
}

export async function checkpoints(main, [workflowId, traceId]) {
  if (workflowId) return runView(main, workflowId, traceId);
  const data = await api("checkpoints?limit=1000");
  const runs = new Map();
  for (const c of data.items) {
    const r = runs.get(c.workflow_id) || { workflow_id: c.workflow_id, agents: new Set(), count: 0, latest: c };
    r.agents.add(c.agent_id); r.count += 1;
    if (c.sequence > r.latest.sequence) r.latest = c;
    runs.set(c.workflow_id, r);
  }
  const hasRuns = await runControls();
  main.append(section("Runs with checkpoints",
    runs.size ? table(["Run (workflow id)", "Agents", "Checkpoints", "Latest", "Saved"], [...runs.values()].map((r) =>
      h("tr", { "data-run": r.workflow_id }, h("td", {}, h("a", { href: `#/checkpoints/${encodeURIComponent(r.workflow_id)}` }, r.workflow_id)),
        h("td", {}, [...r.agents].join(", ")), h("td", {}, r.count), h("td", {}, `#${r.latest.sequence} ${r.latest.labels?.["run.step"] !== undefined ? `(step ${r.latest.labels["run.step"]})` : ""}`), h("td", {}, when(r.latest.created_at)))), { "aria-label": "runs" })
      : h("p", { class: "muted" }, "No checkpoint yet."),
    hasRuns ? null : h("p", { class: "muted" }, "Run controls (resume, cancel, fork) appear when the server has /api/workflows/runs.")));
  return null;
}

async function runView(main, workflowId, traceId) {
  const list = await api(`checkpoints?workflow_id=${encodeURIComponent(workflowId)}&limit=1000`);
  const items = [...list.items].sort((a, b) => a.sequence - b.sequence || a.created_at.localeCompare(b.created_at));
  const detail = h("div", { id: "checkpoint-detail" });
  const picked = new Set();
  const diffBox = h("div", { id: "diff" });
  const hasRuns = await runControls();
  const chain = h("div", { class: "chain", role: "list", "aria-label": "checkpoint chain" });
  const rows = items.map((c, i) => {
    const status = h("span", { class: "verify" }, "not checked");
    const pick = h("input", { type: "checkbox", "aria-label": `compare #${c.sequence}`, onchange: (e) => { if (e.target.checked) picked.add(c.id); else picked.delete(c.id); } });
    const row = h("tr", { "data-checkpoint": c.id },
      h("td", {}, pick), h("td", {}, `#${c.sequence}`), h("td", {}, when(c.created_at)), h("td", {}, `${c.stored_size} B (${c.uncompressed_size} B raw)`), h("td", {}, c.codec), h("td", {}, status),
      h("td", {},
        h("button", { type: "button", onclick: () => openCheckpoint(detail, c) }, "Open"), " ",
        h("button", { type: "button", onclick: async () => { try { const v = await api(`checkpoints/${c.id}`); status.replaceChildren(badge(v.verification.valid ? "valid" : "corrupt"), v.verification.error ? ` ${v.verification.error}` : ""); } catch (e) { showError(e.message); } } }, "Verify"), " ",
        h("button", { type: "button", class: "danger", onclick: async () => { if (await mutate(`Delete checkpoint #${c.sequence} (${c.id})? This cannot be undone.`, `checkpoints/${c.id}`, { method: "DELETE" })) { row.remove(); chainItem.remove(); } } }, "Delete"),
        hasRuns ? h("button", { type: "button", onclick: () => mutate(`Resume run ${workflowId}?`, `/api/workflows/runs/${encodeURIComponent(workflowId)}/resume`, { method: "POST" }) }, "Resume") : null));
    const chainItem = h("span", { role: "listitem" }, i ? h("span", { class: "link" }, " → ") : null, h("button", { type: "button", onclick: () => openCheckpoint(detail, c) }, `#${c.sequence} ${when(c.created_at)}`));
    chain.append(chainItem);
    return row;
  });
  const compare = h("button", { type: "button", onclick: async () => {
    const ids = [...picked];
    if (ids.length !== 2) { showError("Pick exactly two checkpoints to compare."); return; }
    const [a, b] = await Promise.all(ids.map((id) => api(`checkpoints/${id}/state`)));
    const [x, y] = a.metadata.sequence <= b.metadata.sequence ? [a, b] : [b, a];
    const d = diff(x.state, y.state);
    diffBox.replaceChildren(h("div", { class: "card json" }, h("h2", {}, `#${x.metadata.sequence} → #${y.metadata.sequence}`),
      d.length ? d.map(([op, p, u, v]) => h("div", { class: `diff-${op}` }, `${op === "add" ? "+" : op === "del" ? "−" : "~"} ${p}: ${op === "add" ? "" : JSON.stringify(u)}${op === "chg" ? " → " : ""}${op === "del" ? "" : JSON.stringify(v)}`)) : h("p", {}, "No difference.")));
  } }, "Compare the two picked");
  main.append(section(`Run ${workflowId}`, h("p", {}, h("a", { href: "#/checkpoints" }, "← all runs")), chain),
    section("Checkpoints", table(["", "Seq", "Saved", "Size", "Codec", "Verified", ""], rows, { "aria-label": "checkpoints" }), h("p", {}, compare), diffBox, detail));
  await runTimeline(main, workflowId, traceId, items, detail);
  return null;
}

async function openCheckpoint(target, c) {
  try {
    const s = await api(`checkpoints/${c.id}/state`);
    target.replaceChildren(h("div", { class: "card" }, h("h2", {}, `Checkpoint #${c.sequence}`),
      table(["Field", "Value"], Object.entries(s.metadata).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, typeof v === "object" ? JSON.stringify(v) : String(v))))),
      h("h2", {}, "State"), h("div", { class: "json", id: "state-tree" }, jsonTree(s.state))));
  } catch (e) { showError(`Checkpoint ${c.id}: ${e.message}`); }
}

/** One time axis: the run's steps, the breaker transitions and retries its spans recorded, its checkpoints. */
async function runTimeline(main, workflowId, traceId, items, detail) {
  let id = traceId;
  if (!id) {
    const list = await api("traces?name=workflow&limit=200");
    for (const t of list.traces) {
      const tree = await api(`traces/${t.trace_id}`);
      if (flatten(tree.roots).some((r) => (r.node.attributes?.["run.id"] ?? r.node.attributes?.["workflow.id"]) === workflowId)) { id = t.trace_id; break; }
    }
  }
  const box = section("Run timeline");
  main.append(box);
  if (!id) { box.append(h("p", { class: "muted" }, "No trace of this run is kept.")); return; }
  const tree = await api(`traces/${id}`);
  const rows = flatten(tree.roots).filter((r) => r.node.name.startsWith("workflow") || r.depth <= 1);
  const marks = items.map((c) => ({ at: Date.parse(c.created_at) * 1e6, cp: true, title: `checkpoint #${c.sequence}`, onclick: () => openCheckpoint(detail, c) }));
  const notes = [];
  for (const r of rows) for (const e of r.node.events || []) {
    if (/breaker|failed|retry|rejected|rate/i.test(e.name)) { marks.push({ at: e.time_unix_nanos, title: `${e.name} ${JSON.stringify(e.attributes)}` }); notes.push([e.time_unix_nanos, r.node.name, e.name, e.attributes]); }
  }
  const details = h("div", {});
  box.append(h("p", { class: "lane-label" }, "Bars: steps (red = failed, hatched = running). Green marks: checkpoints (click to open). Amber marks: breaker transitions, failures, retries, rejections."),
    waterfall(rows, { marks, onSelect: (n) => spanDetails(details, n) }),
    notes.length ? table(["Time", "Span", "What", "Details"], notes.sort((a, b) => a[0] - b[0]).map(([t, s, n, a]) => h("tr", {}, h("td", {}, when(t / 1e6)), h("td", {}, s), h("td", {}, n), h("td", {}, JSON.stringify(a))))) : null, details);
}

export const views = { overview, traces, checkpoints };
