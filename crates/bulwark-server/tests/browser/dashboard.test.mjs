// The dashboard in a real headless Chromium against a real `bulwark serve`: what a person sees.
// Run by scripts/browser.sh (node --test); BULWARK_BIN is the server, CHROMIUM the browser,
// PLAYWRIGHT_DIR where playwright-core is installed, BULWARK_SCREENSHOTS the folder
// screenshots go to.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";

// Playwright lives in the cache scripts/browser.sh installs it to, not in the repository.
const { chromium } = createRequire(join(process.env.PLAYWRIGHT_DIR, "package.json"))("playwright-core");

const TOKEN = "dashboard-test-token-0123456789";
const shots = process.env.BULWARK_SCREENSHOTS;
let server, base, browser, dir;

const freePort = () => new Promise((resolve, reject) => {
  const s = createServer();
  s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
  s.on("error", reject);
});

async function call(method, path) {
  const res = await fetch(base + path, { method, headers: method === "GET" ? {} : { Authorization: `Bearer ${TOKEN}` } });
  return { status: res.status, body: await res.json() };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "bulwark-browser-"));
  writeFileSync(join(dir, "bulwark.toml"), "[demo]\nfailure_rate = 1.0\nlatency = \"5ms\"\n[breakers]\nfailure_threshold = 2\n[workflows]\nmax_attempts = 2\n");
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(process.env.BULWARK_BIN, ["serve", "--config", join(dir, "bulwark.toml"), "--listen", `127.0.0.1:${port}`, "--data-dir", join(dir, "data"), "--log", "error"],
    { env: { ...process.env, BULWARK_TOKEN: TOKEN }, stdio: ["ignore", "inherit", "inherit"] });
  for (let i = 0; ; i++) {
    try { if ((await fetch(`${base}/api/observability/health`)).status) break; } catch {}
    if (i > 200) throw new Error("bulwark serve did not start");
    await new Promise((r) => setTimeout(r, 50));
  }
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A page that fails the test on any console error except the expected HTTP refusals. */
async function open(t, { expected = [], ...options } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, ...options });
  const page = await context.newPage();
  const errors = [];
  const allowed = ["/api/observability/alerts", "/api/workflows/runs", ...expected];
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const url = m.location()?.url || "";
    if (m.text().startsWith("Failed to load resource") && allowed.some((a) => url.includes(a))) return;
    errors.push(`${m.text()} at ${url}`);
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  t.after(async () => { await context.close(); assert.deepEqual(errors, [], "console errors in the page"); });
  return page;
}

const shot = async (page, name) => { if (shots) { mkdirSync(shots, { recursive: true }); await page.screenshot({ path: join(shots, name), fullPage: false }); } };

test("the breaker row shows OPEN within 2 s of the transition, without a reload", async (t) => {
  const page = await open(t);
  await page.goto(`${base}/`);
  await page.locator("#live", { hasText: "live" }).waitFor({ timeout: 5000 });
  const navigations = [];
  page.on("framenavigated", (f) => { if (f === page.mainFrame()) navigations.push(f.url()); });
  const run = await call("POST", "/api/workflows/w-open/execute");
  assert.equal(run.body.status, "waiting");
  const opened = Date.now();
  await page.locator('tr[data-breaker="search_api"] .state', { hasText: "OPEN" }).waitFor({ timeout: 2000 });
  assert.ok(Date.now() - opened < 2000);
  assert.deepEqual(navigations, [], "no reload");
  const bands = page.locator('tr[data-breaker="search_api"] svg.timeline rect');
  assert.equal(await bands.last().getAttribute("class"), "band-open", "the timeline ends in the open band");
  assert.match(await page.locator('tr[data-breaker="search_api"] svg.timeline').getAttribute("aria-label"), /OPEN from/);
  await page.locator("#charts .card").first().waitFor();
  await call("POST", "/api/workflows/w-open-2/execute");
  // The charts draw from the second metrics sample on (one every 2 s).
  await page.locator("#charts .card", { hasText: "now" }).first().waitFor({ timeout: 6000 });
  await page.waitForTimeout(2100);
  await shot(page, "dashboard-overview.png");
});

test("the trace list shows the run and its waterfall has one bar per span, nested by parent", async (t) => {
  const run = await call("POST", "/api/workflows/w-trace/execute");
  const page = await open(t);
  await page.goto(`${base}/#/traces`);
  const row = page.locator("#trace-list tr", { hasText: "/api/workflows/{workflow_id}/execute" }).first();
  await row.waitFor({ timeout: 5000 });
  await page.locator(`tr[data-trace="${run.body.trace_id}"]`).waitFor({ timeout: 7000 });
  await shot(page, "dashboard-traces.png");
  await page.locator(`tr[data-trace="${run.body.trace_id}"] a`).click();
  const tree = await call("GET", `/api/observability/traces/${run.body.trace_id}`);
  await page.locator(".wf-row").first().waitFor();
  const rows = await page.$$eval(".waterfall .wf-row", (els) => els.map((e) => ({ id: e.dataset.span, depth: Number(e.dataset.depth), parent: e.dataset.parent, err: !!e.querySelector(".wf-bar.err") })));
  assert.equal(rows.length, tree.body.summary.span_count);
  const depth = Object.fromEntries(rows.map((r) => [r.id, r.depth]));
  for (const [i, r] of rows.entries()) {
    if (!r.parent) { assert.equal(r.depth, 0); continue; }
    assert.equal(r.depth, depth[r.parent] + 1, `span ${r.id} sits one level under its parent`);
    assert.ok(rows.findIndex((p) => p.id === r.parent) < i, "a parent comes before its children");
  }
  assert.ok(rows.some((r) => r.err), "the failed run is red");
  await page.locator(".wf-row", { hasText: "workflow.step" }).first().click();
  await page.locator("#span-details", { hasText: "step" }).waitFor();
  await shot(page, "dashboard-waterfall.png");
});

test("a checkpoint's JSON tree shows the saved state; delete asks, a refusal shows the error, then the row is gone", async (t) => {
  await call("POST", "/api/workflows/w-cp/execute");
  const list = await call("GET", "/api/observability/checkpoints?workflow_id=w-cp");
  const cp = list.body.items[0];
  const saved = await call("GET", `/api/observability/checkpoints/${cp.id}/state`);
  const page = await open(t, { expected: [`/checkpoints/${cp.id}`] });
  await page.goto(`${base}/#/checkpoints`);
  await page.locator('tr[data-run="w-cp"] a').click();
  await page.locator(`tr[data-checkpoint="${cp.id}"] button`, { hasText: "Open" }).click();
  const tree = page.locator("#state-tree");
  await tree.waitFor();
  const text = await tree.innerText();
  for (const [key, value] of Object.entries(saved.body.state)) {
    assert.ok(text.includes(`${key}:`), `the tree shows ${key}`);
    if (typeof value !== "object") assert.ok(text.includes(JSON.stringify(value)), `the tree shows ${key}'s value`);
  }
  await page.locator(`tr[data-checkpoint="${cp.id}"] button`, { hasText: "Verify" }).click();
  await page.locator(`tr[data-checkpoint="${cp.id}"] .verify`, { hasText: "VALID" }).waitFor();
  await page.locator("section", { hasText: "Run timeline" }).locator(".wf-row").first().waitFor({ timeout: 7000 });
  await shot(page, "dashboard-checkpoints.png");
  await page.locator("section", { hasText: "Run timeline" }).last().scrollIntoViewIfNeeded();
  await shot(page, "dashboard-run-timeline.png");

  // Without the token the server refuses, and the page says so; the row stays.
  const dialogs = [];
  page.on("dialog", (d) => { dialogs.push([d.type(), d.message()]); d.type() === "prompt" ? d.accept(TOKEN) : d.accept(); });
  await page.locator(`tr[data-checkpoint="${cp.id}"] button`, { hasText: "Delete" }).click();
  await page.locator("#error", { hasText: "Refused" }).waitFor();
  assert.match(await page.locator("#error").innerText(), /Bearer/);
  assert.equal(await page.locator(`tr[data-checkpoint="${cp.id}"]`).count(), 1);
  // With the token, after the confirmation, the row is gone.
  await page.locator("#token-button").click();
  await page.locator("#token-button", { hasText: "Token set" }).waitFor();
  await page.locator(`tr[data-checkpoint="${cp.id}"] button`, { hasText: "Delete" }).click();
  await page.locator(`tr[data-checkpoint="${cp.id}"]`).waitFor({ state: "detached" });
  assert.deepEqual(dialogs.map((d) => d[0]), ["confirm", "prompt", "confirm"]);
  assert.match(dialogs[0][1], /Delete checkpoint/);
  assert.equal((await call("GET", `/api/observability/checkpoints/${cp.id}`)).status, 404);
});

test("a trace of 10 000 spans opens in under 2 s and renders only the visible rows", async (t) => {
  const page = await open(t);
  const start = 1_700_000_000_000_000_000;
  const make = (i, depth) => ({ trace_id: "big", span_id: `s${i}`, parent_span_id: null, name: `span ${i}`, start_unix_nanos: start + i * 1000, end_unix_nanos: start + i * 1000 + 500 + (depth ? 0 : 20_000_000), attributes: {}, events: [], status: { code: i % 97 ? "UNSET" : "ERROR" }, children: [] });
  const root = make(0, 0);
  let n = 1;
  while (n < 10_000) { const child = make(n++, 1); child.parent_span_id = "s0"; for (let k = 0; k < 9 && n < 10_000; k++) { const g = make(n++, 2); g.parent_span_id = child.span_id; child.children.push(g); } root.children.push(child); }
  const body = JSON.stringify({ trace_id: "big", summary: { trace_id: "big", root_name: "span 0", duration_nanos: 20_000_000, span_count: 10_000, has_error: true }, roots: [root] });
  await page.route("**/api/observability/traces/big", (r) => r.fulfill({ status: 200, contentType: "application/json", body }));
  await page.goto(`${base}/#/overview`);
  await page.locator("#live", { hasText: "live" }).waitFor();
  const t0 = Date.now();
  await page.evaluate(() => { location.hash = "#/traces/big"; });
  await page.locator(".wf-row").first().waitFor();
  const took = Date.now() - t0;
  assert.ok(took < 2000, `opened in ${took} ms`);
  assert.equal(await page.locator(".waterfall").getAttribute("aria-label"), "10000 spans");
  assert.ok((await page.locator(".wf-row").count()) < 200, "rows are virtualised");
  await page.locator(".waterfall").evaluate((el) => { el.scrollTop = el.scrollHeight; });
  await page.locator('.wf-row[data-span="s9999"]').waitFor({ timeout: 1000 });
});

test("the page is readable at phone width in dark mode and names states in text", async (t) => {
  const page = await open(t, { viewport: { width: 390, height: 844 }, colorScheme: "dark" });
  await page.goto(`${base}/dashboard`);
  await page.locator('tr[data-breaker="search_api"] .state', { hasText: /OPEN|CLOSED|HALF_OPEN/ }).waitFor({ timeout: 5000 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal page scroll (${overflow}px)`);
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Overview");
  await shot(page, "dashboard-phone-dark.png");
});
