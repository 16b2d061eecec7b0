// Tiny DOM helpers shared by every page. Text is always set as text nodes: nothing
// from the API is ever parsed as HTML (no innerHTML with data anywhere in the UI).

/**
 * Creates an element. `attrs`: attributes (`class`, `data-testid`, `for`, ...),
 * with `on<event>` keys taking listeners and boolean `true`/`false` meaning present
 * or absent. Children: nodes, strings (text nodes), arrays of them; null/false skipped.
 */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "value") {
      node.value = value;
    } else if (key === "checked") {
      node.checked = Boolean(value);
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
}

/** Removes every child of `node`; returns it. */
export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

/** A wall time in milliseconds since the epoch as local date and time; "—" if absent. */
export function fmtTime(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(Number(ms))) return "—";
  const d = new Date(Number(ms));
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A duration in milliseconds, short: "420 ms", "3.2 s", "5 min". */
export function fmtAgo(ms) {
  if (ms === null || ms === undefined) return "never";
  const n = Number(ms);
  if (n < 1000) return `${n} ms ago`;
  if (n < 60000) return `${(n / 1000).toFixed(1)} s ago`;
  if (n < 3600000) return `${Math.round(n / 60000)} min ago`;
  return `${(n / 3600000).toFixed(1)} h ago`;
}

/**
 * Money as the API sends it (a decimal string of US dollars, e.g. "12.5" or
 * "0.000125") as "$12.50"; small amounts keep their significant digits.
 */
export function fmtUsd(value) {
  if (value === null || value === undefined || value === "") return "—";
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  const abs = Math.abs(n);
  const digits = abs !== 0 && abs < 0.01 ? 6 : 2;
  return `${n < 0 ? "-" : ""}$${abs.toFixed(digits)}`;
}
