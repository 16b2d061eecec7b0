// The usage log of this node: one row per request, newest first, filtered by time
// range, key and model (GET /admin/api/usage), paged backwards by `until`.

import { el, clear, fmtTime, fmtUsd } from "../dom.js";

const PAGE = 50;

/** `datetime-local` value (local time) → Unix ms, or null when empty/invalid. */
function localToMs(value) {
  if (!value) return null;
  const ms = new Date(value).getTime();
  return Number.isFinite(ms) ? ms : null;
}

function field(id, label, input) {
  input.id = id;
  input.name = id;
  const wrap = el("div", { class: "field" });
  wrap.append(el("label", { for: id }, label), input);
  return wrap;
}

export function mount(root, ctx) {
  let alive = true;
  // The filter the shown rows were fetched with, and where the next page starts.
  let filter = null;
  let cursor = null; // { until, skip }: the next page's `until` and how many of its first rows were already shown
  let shown = 0;

  const since = el("input", { type: "datetime-local", step: "1" });
  const until = el("input", { type: "datetime-local", step: "1" });
  const key = el("input", { type: "text", list: "usage-keys", autocomplete: "off", placeholder: "any key" });
  const model = el("input", { type: "text", list: "usage-models", autocomplete: "off", placeholder: "any model" });
  const keys = el("datalist", { id: "usage-keys" });
  const models = el("datalist", { id: "usage-models" });
  const apply = el("button", { type: "submit", "data-testid": "usage-apply" }, "Apply");
  const reset = el("button", { type: "button", "data-testid": "usage-reset" }, "Clear filters");
  const form = el("form", { class: "controls", "data-testid": "usage-filters" });
  form.append(
    field("usage-since", "From", since),
    field("usage-until", "Until", until),
    field("usage-key", "Key", key),
    field("usage-model", "Model", model),
    keys,
    models,
    apply,
    reset,
  );
  const status = el("p", { class: "muted", role: "status", "data-testid": "usage-status" });
  const table = el("table", { "data-testid": "usage-table" });
  table.append(el("caption", {}, "Requests on this node, newest first"));
  const head = el("tr", {});
  for (const h of ["time", "key", "model", "provider", "status", "latency", "prompt", "completion", "cached", "cost"]) {
    head.append(el("th", { scope: "col" }, h));
  }
  table.append(el("thead", {}, head));
  const body = el("tbody", {});
  table.append(body);
  const more = el("button", { type: "button", "data-testid": "usage-more" }, "Older rows");
  more.hidden = true;
  root.append(el("h1", {}, "Usage log"), form, status, el("div", { class: "table-wrap card" }, table), more);

  function query(extra) {
    const q = new URLSearchParams();
    if (filter.since !== null) q.set("since", String(filter.since));
    if (filter.key) q.set("key", filter.key);
    if (filter.model) q.set("model", filter.model);
    for (const [k, v] of Object.entries(extra)) q.set(k, String(v));
    return q;
  }

  function row(r) {
    const tr = el("tr", { "data-testid": "usage-row", "data-model": r.model });
    const failed = r.status >= 400;
    const cells = [
      fmtTime(r.time_ms),
      r.key_id ?? "anonymous",
      r.model,
      r.provider ?? "–",
      `${r.status} ${failed ? "error" : "ok"}`,
      `${r.latency_ms} ms`,
      String(r.prompt_tokens),
      String(r.completion_tokens),
      String(r.cached_tokens),
      fmtUsd(r.cost_usd),
    ];
    cells.forEach((text, i) => {
      const td = el("td", {}, i === 4 ? el("span", { class: `state ${failed ? "state-bad" : "state-ok"}` }, text) : text);
      tr.append(td);
    });
    return tr;
  }

  async function page(first) {
    const c = first ? { until: filter.until, skip: 0 } : cursor;
    const extra = { limit: PAGE + c.skip };
    if (c.until !== null) extra.until = c.until;
    status.textContent = "Loading…";
    try {
      const doc = await ctx.api("GET", `/admin/api/usage?${query(extra)}`);
      if (!alive) return;
      if (first) {
        clear(body);
        shown = 0;
      }
      const rows = doc.data.slice(c.skip);
      for (const r of rows) body.append(row(r));
      shown += rows.length;
      // The next page ends just after the oldest row shown (`until` is exclusive):
      // rows of that same millisecond already shown are skipped, none is lost.
      const full = doc.data.length === extra.limit;
      if (full && rows.length > 0) {
        const last = rows[rows.length - 1].time_ms;
        const same = doc.data.filter((r) => r.time_ms === last).length;
        // More rows in one millisecond than a page can skip (limit ≤ 1000): move on
        // past that millisecond rather than ask for ever larger pages.
        cursor = same + PAGE <= 1000 ? { until: last + 1, skip: same } : { until: last, skip: 0 };
      } else {
        cursor = null;
      }
      more.hidden = cursor === null;
      status.textContent = shown === 0 ? "No requests match." : `${shown} rows${cursor ? "" : " (all)"}`;
      table.setAttribute("data-rows", String(shown));
    } catch (error) {
      if (!alive) return;
      status.textContent = `Could not load: ${error.message}`;
      if (error.param) {
        ctx.toast(`${error.param}: ${error.message}`, "error");
      }
    }
  }

  async function suggestions() {
    for (const [group, list] of [
      ["key", keys],
      ["model", models],
    ]) {
      try {
        const doc = await ctx.api("GET", `/admin/api/usage/summary?group_by=${group}`);
        if (!alive) return;
        clear(list);
        for (const g of doc.data) {
          if (g.group !== null) list.append(el("option", { value: g.group }));
        }
      } catch (_) {
        // Suggestions are a convenience; the table shows the error if there is one.
      }
    }
  }

  function read() {
    const s = localToMs(since.value);
    const u = localToMs(until.value);
    return { since: s, until: u, key: key.value.trim(), model: model.value.trim() };
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    filter = read();
    page(true);
  });
  reset.addEventListener("click", () => {
    since.value = "";
    until.value = "";
    key.value = "";
    model.value = "";
    filter = read();
    page(true);
  });
  more.addEventListener("click", () => page(false));

  filter = read();
  page(true);
  suggestions();
  return () => {
    alive = false;
  };
}
