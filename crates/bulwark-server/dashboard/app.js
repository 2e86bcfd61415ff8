// The dashboard's core: same-origin API calls (the bearer token kept in sessionStorage and
// sent on writes only), the live event stream, and the hash router. Views live in views.js.
import { views } from "./views.js";

const API = "/api/observability";
const TOKEN_KEY = "bulwark.token";

/** Builds an element: h("td", {class: "x", onclick}, child, "text", ...). Text is never parsed as HTML. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    // Through the CSSOM: the page's CSP refuses style attributes.
    else if (k === "style") el.style.cssText = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Shows an error banner (the server's message when it gave one). */
export function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message;
  box.hidden = !message;
}

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

/** Calls the API; writes carry the token and a JSON body. A refusal throws with the server's message. */
export async function api(path, { method = "GET", body } = {}) {
  const headers = {};
  if (method !== "GET") {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers["Authorization"] = `Bearer ${token}`;
  }
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path.startsWith("/") ? path : `${API}/${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    const msg = data?.error?.message || `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, msg);
  }
  return data;
}

/** Runs a mutating call after the user confirms; shows the server's error when refused. */
export async function mutate(question, path, options) {
  if (question && !window.confirm(question)) return null;
  try {
    const out = await api(path, options);
    showError("");
    return out;
  } catch (e) {
    showError(`Refused: ${e.message}${e.status === 401 ? " (set the token with “Set token”)" : ""}`);
    return null;
  }
}

function askToken() {
  const current = sessionStorage.getItem(TOKEN_KEY) || "";
  const token = window.prompt("Bearer token for changes (kept for this tab only):", current);
  if (token === null) return;
  if (token) sessionStorage.setItem(TOKEN_KEY, token.trim());
  else sessionStorage.removeItem(TOKEN_KEY);
  updateTokenButton();
}

function updateTokenButton() {
  document.getElementById("token-button").textContent =
    sessionStorage.getItem(TOKEN_KEY) ? "Token set ✓" : "Set token";
}

// Live events: every view may listen; the history feeds the breaker timelines.
const listeners = new Set();
export const history = [];
export function onEvent(fn) { listeners.add(fn); return () => listeners.delete(fn); }

function connect() {
  const live = document.getElementById("live");
  const source = new EventSource(`${API}/events?last_event_id=0`);
  const deliver = (e) => {
    let event;
    try { event = JSON.parse(e.data); } catch { return; }
    history.push(event);
    if (history.length > 2000) history.splice(0, history.length - 2000);
    for (const fn of listeners) fn(event);
  };
  for (const kind of ["breaker", "limiter", "checkpoint", "workflow", "alert"]) source.addEventListener(kind, deliver);
  source.addEventListener("reset", () => { for (const fn of listeners) fn({ kind: "reset" }); });
  source.onopen = () => { live.textContent = "● live"; };
  source.onerror = () => { live.textContent = "reconnecting…"; };
}

let current = null;
async function route() {
  const [, name = "overview", ...rest] = (location.hash || "#/overview").split("/");
  const view = views[name] ? name : "overview";
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  if (current?.stop) current.stop();
  const main = document.getElementById("main");
  main.replaceChildren();
  showError("");
  try {
    current = await views[view](main, rest.map(decodeURIComponent));
  } catch (e) {
    showError(`Could not load: ${e.message}`);
  }
}

document.getElementById("token-button").addEventListener("click", askToken);
window.addEventListener("hashchange", route);
updateTokenButton();
connect();
route();
