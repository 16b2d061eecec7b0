// The app: login and logout, navigation, the router, toasts, and the error collector
// the browser tests read (`window.__auroraErrors`).

import { api, ApiError, token, setToken, clearToken } from "./api.js";
import { el, clear } from "./dom.js";
import { pages } from "./pages/registry.js";

// Every uncaught error, rejected promise, console.error and CSP violation, for the
// browser tests (each test fails if this is not empty) and for a curious operator.
const errors = [];
window.__auroraErrors = errors;
window.addEventListener("error", (e) => errors.push(`error: ${e.message} (${e.filename}:${e.lineno})`));
window.addEventListener("unhandledrejection", (e) => errors.push(`unhandled rejection: ${e.reason && e.reason.message ? e.reason.message : e.reason}`));
document.addEventListener("securitypolicyviolation", (e) => errors.push(`csp: ${e.violatedDirective} blocked ${e.blockedURI}`));
const consoleError = console.error.bind(console);
console.error = (...args) => {
  errors.push(`console.error: ${args.map(String).join(" ")}`);
  consoleError(...args);
};

const BASE = "/admin/dashboard";
const $ = (id) => document.getElementById(id);

let leave = null; // the current page's cleanup
let generation = 0; // bumps on every navigation; a stale page load is dropped

/** A short message in the corner; `kind`: "info", "ok" or "error" (said in text too). */
export function toast(message, kind = "info") {
  const label = { ok: "Done", error: "Error", info: "Note" }[kind] || "Note";
  const node = el("div", { class: `toast toast-${kind}`, "data-testid": `toast-${kind}` }, el("strong", {}, `${label}: `), message);
  $("toasts").appendChild(node);
  setTimeout(() => node.remove(), kind === "error" ? 8000 : 4000);
}

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  route();
}

function defaultPage() {
  return (pages.find((p) => p.path === `${BASE}/overview`) || pages[0]).path;
}

function renderNav() {
  const nav = clear($("nav"));
  const here = location.pathname;
  for (const page of pages.filter((p) => p.nav)) {
    const current = here === page.path || (page.path.includes("/settings/") && here.startsWith(`${BASE}/settings/`));
    nav.appendChild(el("a", {
      href: page.path,
      class: current ? "current" : null,
      "aria-current": current ? "page" : null,
      "data-testid": `nav-${page.path.slice(BASE.length + 1).replace(/\//g, "-")}`,
    }, page.nav));
  }
}

async function route() {
  if (leave) {
    try { leave(); } catch (e) { console.error("leaving page", e); }
    leave = null;
  }
  const mine = ++generation;
  const path = location.pathname.replace(/\/+$/, "") || BASE;
  if (path === BASE) {
    history.replaceState(null, "", defaultPage());
    return route();
  }
  renderNav();
  $("nav").classList.remove("open");
  $("nav-toggle").setAttribute("aria-expanded", "false");
  const root = clear($("page"));
  const page = pages.find((p) => p.path === path);
  if (!page) {
    document.title = "Not found · Aurora";
    root.appendChild(el("section", { class: "card", "data-testid": "not-found" },
      el("h1", {}, "No such page"),
      el("p", {}, "This address is not a page of the admin UI. ", el("a", { href: defaultPage() }, "Go to the start page"), ".")));
    return;
  }
  document.title = `${page.title} · Aurora`;
  let module;
  try {
    module = await page.load();
  } catch (e) {
    console.error("loading page", path, e);
    return;
  }
  if (mine !== generation) return;
  const ctx = { api, navigate, toast };
  try {
    const cleanup = module.mount(root, ctx);
    leave = typeof cleanup === "function" ? cleanup : null;
  } catch (e) {
    console.error("mounting page", path, e);
  }
}

function showLogin(message) {
  if (leave) { try { leave(); } catch { /* leaving anyway */ } leave = null; }
  generation++;
  clear($("page"));
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  document.title = "Sign in · Aurora";
  $("login-token").value = "";
  $("login-token").focus();
}

function showApp() {
  $("login").hidden = true;
  $("app").hidden = false;
  route();
}

async function login(event) {
  event.preventDefault();
  const value = $("login-token").value.trim();
  const submit = $("login-form").querySelector("button[type=submit]");
  if (!value) return;
  submit.disabled = true;
  $("login-error").textContent = "";
  try {
    // Checks the token against a read-only endpoint before keeping it.
    await api("GET", "/admin/api/cluster/status", undefined, { tokenOverride: value });
    setToken(value);
    showApp();
  } catch (e) {
    const message = e instanceof ApiError && e.status === 401
      ? "That is not this node's admin token."
      : e.message;
    $("login-error").textContent = message;
    // Ready for the next try from the keyboard.
    $("login-token").value = "";
    submit.disabled = false;
    $("login-token").focus();
  } finally {
    submit.disabled = false;
  }
}

function start() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", () => {
    clearToken();
    showLogin("Signed out.");
  });
  $("nav-toggle").addEventListener("click", () => {
    const open = $("nav").classList.toggle("open");
    $("nav-toggle").setAttribute("aria-expanded", String(open));
  });
  // In-app links are routed without a reload (the token stays in this tab anyway).
  document.addEventListener("click", (e) => {
    const a = e.target.closest && e.target.closest("a[href]");
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || !url.pathname.startsWith(`${BASE}/`) || url.pathname.startsWith(`${BASE}/assets/`)) return;
    e.preventDefault();
    if (url.pathname !== location.pathname) navigate(url.pathname);
  });
  window.addEventListener("popstate", () => { if (token()) route(); });
  window.addEventListener("aurora:unauthorized", () => showLogin("The admin token was refused; sign in again."));
  if (token()) showApp();
  else showLogin();
}

start();
