// The overview: request rate, error rate, p50/p99 latency, tokens and spend of this
// node over the last 15 minutes, hour or day, in total and by model or by key.
// Everything comes from GET /admin/api/usage/series (the node's own usage log).

import { el, clear, fmtUsd } from "../dom.js";
import { lineChart, fmtShort } from "./charts.js";

/** The ranges offered, with the bucket that keeps a chart readable. */
export const RANGES = [
  { value: "15m", label: "Last 15 minutes", bucket: "30s" },
  { value: "1h", label: "Last hour", bucket: "1m" },
  { value: "24h", label: "Last 24 hours", bucket: "30m" },
];

const REFRESH_MS = 30_000;

function select(id, label, options, value) {
  const control = el("select", { id, name: id });
  for (const o of options) {
    const option = el("option", { value: o.value }, o.label);
    if (o.value === value) option.selected = true;
    control.append(option);
  }
  return el("div", { class: "field" }, el("label", { for: id }, label), control);
}

function groupName(series, groupBy) {
  if (series.other) return "other";
  if (series.group === null) return groupBy === "key" ? "anonymous" : "(none)";
  return series.group;
}

function ms(v) {
  return v === null || v === undefined ? "–" : `${v} ms`;
}

function tile(testid, label, value, detail) {
  const box = el("div", { class: "stat", "data-testid": testid });
  box.append(el("div", { class: "label" }, label));
  box.append(el("div", { class: "value", "data-testid": `${testid}-value` }, value));
  if (detail) box.append(el("div", { class: "label" }, detail));
  return box;
}

function errorCount(n) {
  return n === 1 ? "1 error" : `${n} errors`;
}

function percent(part, whole) {
  return whole > 0 ? `${((100 * part) / whole).toFixed(1)} %` : "–";
}

/**
 * The chart of every API request the node's metrics counted (401s and malformed
 * requests included, which the usage log holds no row for), from the in-memory
 * history, on the same buckets as the other charts: a history interval counts in
 * the bucket its start falls in; a bucket the history does not reach (before the
 * node started, or past what the ring keeps) is a gap, not a zero. `null` when
 * there is nothing to draw yet.
 */
export function trafficChart(history, doc) {
  const step = doc.bucket_ms;
  const first = doc.buckets[0];
  const n = doc.buckets.length;
  const requests = new Array(n).fill(null);
  const errors = new Array(n).fill(null);
  let total = 0;
  let failed = 0;
  for (const p of history?.data || []) {
    const i = Math.floor((p.time_ms - p.interval_ms - first) / step);
    if (i < 0 || i >= n) continue;
    requests[i] = (requests[i] ?? 0) + p.requests;
    errors[i] = (errors[i] ?? 0) + p.errors;
    total += p.requests;
    failed += p.errors;
  }
  if (requests.every((v) => v === null)) return null;
  const perSecond = (v) => (v === null ? null : v / (step / 1000));
  return lineChart({
    id: "traffic",
    title: "All API requests (metrics, 401s included)",
    unit: "requests/s",
    xs: doc.buckets,
    step,
    series: [
      { name: "requests", cls: "series-total", values: requests.map(perSecond), summary: `${total}` },
      { name: "status ≥ 400", cls: "series-1", values: errors.map(perSecond), summary: `${failed}` },
    ],
  });
}

/** Draws one answer of the series endpoint into `out`. */
export function render(out, doc, groupBy, history) {
  clear(out);
  const step = doc.bucket_ms;
  const seconds = step / 1000;
  const xs = doc.buckets;
  const t = doc.total.total;
  const tiles = el("div", { class: "summary" });
  tiles.append(
    tile("total-requests", "Requests", String(t.requests), `${fmtShort(t.requests / ((doc.until - doc.since) / 1000))} /s`),
    tile("total-errors", "Errors (status ≥ 400)", String(t.errors), percent(t.errors, t.requests)),
    tile("total-p50", "Latency p50", ms(t.latency_p50_ms)),
    tile("total-p99", "Latency p99", ms(t.latency_p99_ms)),
    tile("total-tokens", "Tokens in / out", `${t.prompt_tokens} / ${t.completion_tokens}`, `${t.cached_tokens} cached`),
    tile("total-spend", "Spend", fmtUsd(t.cost_usd)),
  );
  out.append(tiles);

  const groups = doc.groups.map((s, k) => ({
    ...s,
    name: groupName(s, groupBy),
    cls: s.other ? "series-other" : `series-${k % 8}`,
  }));
  const by = groupBy === "key" ? "key" : "model";
  const charts = el("div", { class: "charts" });
  const rate = (p) => p.requests / seconds;
  charts.append(
    lineChart({
      id: "requests",
      title: `Request rate by ${by}`,
      unit: "requests/s",
      xs,
      step,
      series: [
        { name: "all", cls: "series-total", values: doc.total.points.map(rate), summary: `${doc.total.total.requests} requests` },
        ...groups.map((g) => ({ name: g.name, cls: g.cls, values: g.points.map(rate), summary: `${g.total.requests} requests` })),
      ],
    }),
    lineChart({
      id: "errors",
      title: `Error rate by ${by}`,
      unit: "% of requests",
      xs,
      step,
      format: (v) => `${fmtShort(v)}%`,
      series: [
        {
          name: "all",
          cls: "series-total",
          values: doc.total.points.map((p) => (p.requests ? (100 * p.errors) / p.requests : null)),
          summary: `${errorCount(t.errors)}, ${percent(t.errors, t.requests)}`,
        },
        ...groups.map((g) => ({
          name: g.name,
          cls: g.cls,
          values: g.points.map((p) => (p.requests ? (100 * p.errors) / p.requests : null)),
          summary: `${errorCount(g.total.errors)}, ${percent(g.total.errors, g.total.requests)}`,
        })),
      ],
    }),
    lineChart({
      id: "latency",
      title: "Latency p50 and p99",
      unit: "ms",
      xs,
      step,
      series: [
        { name: "p50", cls: "series-0", values: doc.total.points.map((p) => p.latency_p50_ms), summary: ms(t.latency_p50_ms) },
        { name: "p99", cls: "series-1", values: doc.total.points.map((p) => p.latency_p99_ms), summary: ms(t.latency_p99_ms) },
      ],
    }),
    lineChart({
      id: "tokens",
      title: "Tokens",
      unit: `per ${fmtStep(step)}`,
      xs,
      step,
      series: [
        { name: "prompt", cls: "series-0", values: doc.total.points.map((p) => p.prompt_tokens), summary: String(t.prompt_tokens) },
        { name: "completion", cls: "series-1", values: doc.total.points.map((p) => p.completion_tokens), summary: String(t.completion_tokens) },
      ],
    }),
    lineChart({
      id: "spend",
      title: `Spend by ${by}`,
      unit: `USD per ${fmtStep(step)}`,
      xs,
      step,
      format: (v) => `$${fmtShort(v)}`,
      series: [
        { name: "all", cls: "series-total", values: doc.total.points.map((p) => p.cost_nanos / 1e9), summary: fmtUsd(t.cost_usd) },
        ...groups.map((g) => ({ name: g.name, cls: g.cls, values: g.points.map((p) => p.cost_nanos / 1e9), summary: fmtUsd(g.total.cost_usd) })),
      ],
    }),
  );
  const traffic = trafficChart(history, doc);
  if (traffic) charts.append(traffic);
  out.append(charts);

  // The same totals as a table: the numbers beside the colours.
  const table = el("table", { "data-testid": "overview-groups" });
  table.append(el("caption", {}, `Totals by ${by}`));
  const head = el("tr", {});
  for (const h of [by, "requests", "errors", "p50", "p99", "prompt tokens", "completion tokens", "spend"]) {
    head.append(el("th", { scope: "col" }, h));
  }
  table.append(el("thead", {}, head));
  const body = el("tbody", {});
  for (const g of groups) {
    const row = el("tr", { "data-testid": "overview-group-row", "data-group": g.name });
    const name = el("th", { scope: "row" });
    name.append(el("span", { class: `swatch ${g.cls}`, "aria-hidden": "true" }), " ", g.name);
    row.append(name);
    for (const v of [
      String(g.total.requests),
      `${g.total.errors} (${percent(g.total.errors, g.total.requests)})`,
      ms(g.total.latency_p50_ms),
      ms(g.total.latency_p99_ms),
      String(g.total.prompt_tokens),
      String(g.total.completion_tokens),
      fmtUsd(g.total.cost_usd),
    ]) {
      row.append(el("td", {}, v));
    }
    body.append(row);
  }
  if (groups.length === 0) {
    const row = el("tr", {});
    const cell = el("td", { colspan: "8" }, "No requests in this range.");
    row.append(cell);
    body.append(row);
  }
  table.append(body);
  out.append(el("div", { class: "table-wrap card" }, table));
}

function fmtStep(step) {
  if (step % 3_600_000 === 0) return `${step / 3_600_000} h`;
  if (step % 60_000 === 0) return `${step / 60_000} min`;
  return `${step / 1000} s`;
}

export function mount(root, ctx) {
  let range = "1h";
  let groupBy = "model";
  let timer = null;
  let alive = true;
  let seq = 0;

  const heading = el("h1", {}, "Overview");
  const note = el(
    "p",
    { class: "muted" },
    "This node's requests, from its own usage log; the last chart is every API request its metrics counted, 401s included (kept in memory: an hour by 10 s, a day by the minute).",
  );
  const form = el("form", { class: "controls", "data-testid": "overview-controls" });
  const rangeField = select("overview-range", "Range", RANGES, range);
  const rangeSelect = rangeField.querySelector("select");
  const groupField = select(
    "overview-group",
    "Group by",
    [
      { value: "model", label: "Model" },
      { value: "key", label: "Key" },
    ],
    groupBy,
  );
  const groupSelect = groupField.querySelector("select");
  const refresh = el("button", { type: "submit", "data-testid": "overview-refresh" }, "Refresh");
  const status = el("span", { class: "muted", role: "status", "data-testid": "overview-status" });
  form.append(rangeField, groupField, refresh, status);
  const out = el("div", { "data-testid": "overview" });
  root.append(heading, note, form, out);

  async function load() {
    const mine = ++seq;
    const r = RANGES.find((x) => x.value === range) || RANGES[1];
    const query = new URLSearchParams({ window: r.value, bucket: r.bucket, group_by: groupBy, groups: "8" });
    status.textContent = "Loading…";
    try {
      const resolution = r.value === "24h" ? "1m" : "10s";
      const [doc, history] = await Promise.all([
        ctx.api("GET", `/admin/api/usage/series?${query}`),
        // The metrics history is a complement: the page works without it.
        ctx.api("GET", `/admin/api/metrics/history?resolution=${resolution}`).catch(() => null),
      ]);
      if (!alive || mine !== seq) return;
      render(out, doc, groupBy, history);
      out.setAttribute("data-loaded", String(mine));
      status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      if (!alive || mine !== seq) return;
      status.textContent = `Could not load: ${error.message}`;
      ctx.toast(`Overview: ${error.message}`, "error");
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  rangeSelect.addEventListener("change", () => {
    range = rangeSelect.value;
    load();
  });
  groupSelect.addEventListener("change", () => {
    groupBy = groupSelect.value;
    load();
  });
  load();
  timer = setInterval(load, REFRESH_MS);
  return () => {
    alive = false;
    clearInterval(timer);
  };
}
