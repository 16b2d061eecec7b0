// The generic page of one replicated collection: a list with a client-side search,
// create, edit and delete (with a confirmation), driven by a field spec of
// collections.js.
//
// What holds:
// - Every datum comes from /admin/api/<collection> through ctx.api (the admin token
//   in a header); nothing is written with innerHTML: text goes in as text nodes and
//   input values.
// - The form does not second-guess the API: it sends what was typed in the record's
//   shape, and a 400 names the field at fault in `param` (`targets[0].weight`,
//   `kind.deny_patterns.patterns`). That message is shown next to the field it names
//   (`data-testid="field-error-<param>"`, tied to the input by aria-describedby and
//   aria-invalid); a param with no input of its own (`aliases[1]`) goes to the
//   nearest enclosing field (`aliases`), one that names no field at all to the form.
// - A new key's secret is shown once, in the answer of its creation, and dropped
//   from memory when the operator leaves that view: the API cannot show it again.
// - A budget's bar is the `usage` its GET answers: the period's cluster-wide usage
//   as the answering node sees it (docs/policy.md).
//
// Stable selectors for the browser tests are data-testid attributes: collection-page
// (with data-collection), collection-search, collection-refresh, collection-new,
// collection-empty, record-row (with data-id), record-edit, record-delete,
// record-form, record-id, field-<path>, field-error-<path>, add-<path> and
// remove-<path>[i] (rows), form-error, record-save, record-cancel, confirm-dialog,
// confirm-delete, confirm-cancel, key-secret, copy-secret, copy-status, secret-done,
// budget-bar (with data-state), budget-spend, load-error.

import { el as h, clear, fmtTime } from "../dom.js";
import { spec as specOf } from "./collections.js";

/** The page of collection `path` (keys, providers, …), for the page registry. */
export function page(path) {
  const s = specOf(path);
  if (!s) throw new Error(`no collection spec for ${path}`);
  return { mount: (root, ctx) => mountCollection(root, ctx, s) };
}

/** The page of the collection named by the last segment of the location. */
export function mount(root, ctx) {
  const segment = location.pathname.split("/").filter(Boolean).pop() || "";
  const s = specOf(segment);
  if (!s) {
    root.append(h("p", { role: "alert" }, `No collection named ${segment}.`));
    return undefined;
  }
  return mountCollection(root, ctx, s);
}

// ---- helpers ------------------------------------------------------------------------

/** An element id from a field path (`targets[0].weight` → `targets_0__weight`). */
function domId(prefix, path) {
  return `${prefix}-${path.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

/** Exact nano-USD of a decimal USD string ("0.15"), as a BigInt; null if malformed. */
function nanosOf(decimal) {
  const m = /^(\d+)(?:\.(\d{1,9}))?$/.exec(String(decimal));
  if (!m) return null;
  return BigInt(m[1]) * 1000000000n + BigInt((m[2] || "").padEnd(9, "0"));
}

/** A local `YYYY-MM-DDTHH:MM:SS` for a datetime-local input. */
function localInput(ms) {
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return "";
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// ---- the page ----------------------------------------------------------------------

function mountCollection(root, ctx, s) {
  let alive = true;
  let records = [];
  let query = "";
  const base = `/admin/api/${s.path}`;
  const itemPath = (id) => `${base}/${encodeURI(id)}`;

  const dialog = h("dialog", { class: "confirm", "data-testid": "confirm-dialog", "aria-labelledby": "confirm-title" });
  const view = h("div", { class: "collection-view" });
  root.append(
    h(
      "section",
      { class: "collection", "data-testid": "collection-page", "data-collection": s.path },
      h("h1", {}, s.title),
      h("p", { class: "intro" }, s.intro),
      view,
      dialog,
    ),
  );

  // -- list --

  async function showList() {
    clear(view);
    const search = h("input", {
      id: `search-${s.path}`,
      type: "search",
      value: query,
      "data-testid": "collection-search",
      placeholder: "any field",
      oninput: () => {
        query = search.value;
        fill();
      },
    });
    const count = h("span", { class: "count", "aria-live": "polite" });
    const body = h("div", { class: "collection-list" }, h("p", { class: "muted" }, "Loading…"));
    view.append(
      h(
        "div",
        { class: "toolbar" },
        h("label", { for: search.id }, `Search ${s.title.toLowerCase()}`),
        search,
        count,
        h("button", { type: "button", "data-testid": "collection-refresh", onclick: () => showList() }, "Refresh"),
        h(
          "button",
          { type: "button", class: "primary", "data-testid": "collection-new", onclick: () => showForm(null) },
          `New ${s.singular}`,
        ),
      ),
      body,
    );

    try {
      const answer = await ctx.api("GET", base);
      records = Array.isArray(answer && answer.data) ? answer.data : [];
    } catch (e) {
      if (!alive) return;
      clear(body);
      body.append(h("p", { class: "error", role: "alert", "data-testid": "load-error" }, `Could not load ${s.title.toLowerCase()}: ${e.message || e}`));
      return;
    }
    if (!alive) return;
    fill();

    function fill() {
      const words = query.toLowerCase().split(/\s+/).filter(Boolean);
      const shown = records.filter((r) => {
        const text = JSON.stringify(r).toLowerCase();
        return words.every((w) => text.includes(w));
      });
      count.textContent = words.length ? `${shown.length} of ${records.length}` : `${records.length}`;
      clear(body);
      if (!shown.length) {
        body.append(
          h(
            "p",
            { class: "muted", "data-testid": "collection-empty" },
            records.length ? "Nothing matches the search." : `No ${s.title.toLowerCase()} yet.`,
          ),
        );
        return;
      }
      const head = s.columns.map(([label]) => h("th", { scope: "col" }, label));
      if (s.usage) head.push(h("th", { scope: "col" }, "This period (cluster-wide)"));
      head.push(h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")));
      const rows = shown.map((r) => {
        const cells = s.columns.map(([label, value], i) => {
          const text = safe(value, r);
          return i === 0 ? h("th", { scope: "row", "data-label": label }, text) : h("td", { "data-label": label }, text);
        });
        if (s.usage) cells.push(h("td", { "data-label": "This period" }, usageBar(r)));
        cells.push(
          h(
            "td",
            { class: "actions" },
            h("button", { type: "button", "data-testid": "record-edit", "aria-label": `Edit ${r.id}`, onclick: () => showForm(r.id) }, "Edit"),
            h(
              "button",
              { type: "button", class: "danger", "data-testid": "record-delete", "aria-label": `Delete ${r.id}`, onclick: () => confirmDelete(r.id) },
              "Delete",
            ),
          ),
        );
        return h("tr", { "data-testid": "record-row", "data-id": r.id }, cells);
      });
      body.append(
        h(
          "div",
          { class: "table-wrap" },
          h("table", { class: "records" }, h("caption", { class: "visually-hidden" }, s.title), h("thead", {}, h("tr", {}, head)), h("tbody", {}, rows)),
        ),
      );
    }
  }

  function safe(value, r) {
    try {
      const v = value(r);
      return v === null || v === undefined ? "—" : String(v);
    } catch (_) {
      return "—";
    }
  }

  // -- delete --

  function confirmDelete(id) {
    clear(dialog);
    const cancel = h("button", { type: "button", "data-testid": "confirm-cancel", onclick: () => dialog.close() }, "Cancel");
    const status = h("p", { class: "error", role: "alert" });
    const del = h(
      "button",
      {
        type: "button",
        class: "danger",
        "data-testid": "confirm-delete",
        onclick: async () => {
          del.disabled = true;
          try {
            await ctx.api("DELETE", itemPath(id));
          } catch (e) {
            del.disabled = false;
            status.textContent = `Could not delete: ${e.message || e}`;
            return;
          }
          dialog.close();
          ctx.toast(`Deleted ${s.singular} ${id}.`, "ok");
          if (alive) showList();
        },
      },
      "Delete",
    );
    dialog.append(
      h("h2", { id: "confirm-title" }, `Delete ${s.singular} ${id}?`),
      h("p", {}, "It is removed on every node of the cluster. This cannot be undone."),
      status,
      h("div", { class: "buttons" }, cancel, del),
    );
    dialog.showModal();
    cancel.focus();
  }

  // -- create and edit --

  async function showForm(id) {
    clear(view);
    view.append(h("p", { class: "muted" }, "Loading…"));
    let current = null;
    const refs = {};
    try {
      if (id !== null) current = await ctx.api("GET", itemPath(id));
      await Promise.all(
        refNames(s.fields).map(async (name) => {
          try {
            const list = await ctx.api("GET", `/admin/api/${name}`);
            refs[name] = (list.data || []).map((r) => r.id);
          } catch (_) {
            refs[name] = [];
          }
        }),
      );
    } catch (e) {
      if (!alive) return;
      clear(view);
      view.append(
        h("p", { class: "error", role: "alert", "data-testid": "load-error" }, `Could not load ${id}: ${e.message || e}`),
        h("button", { type: "button", onclick: () => showList() }, "Back to the list"),
      );
      return;
    }
    if (!alive) return;
    clear(view);

    const form = new Form(`${s.path}-form`, refs);
    const formError = h("p", { class: "error form-error", role: "alert", tabindex: "-1", "data-testid": "form-error", hidden: true });
    // The id: typed for a new record, fixed once it exists (ids cannot be renamed).
    const idField =
      id === null
        ? form.field({ name: "id", label: s.idLabel || "Id", type: "text", required: s.idRequired, help: s.idHelp }, "id", undefined)
        : null;
    const idView = idField
      ? idField.el
      : h("p", { class: "record-id" }, h("span", { class: "muted" }, "Id: "), h("code", { "data-testid": "record-id" }, id));
    const controls = s.fields.map((f) => form.field(f, f.name, current ? current[f.name] : undefined));
    const save = h("button", { type: "submit", class: "primary", "data-testid": "record-save" }, id === null ? `Create ${s.singular}` : "Save");
    const cancel = h("button", { type: "button", "data-testid": "record-cancel", onclick: () => showList() }, "Cancel");
    const el = h(
      "form",
      { class: "record-form", novalidate: true, "data-testid": "record-form", "aria-labelledby": "record-form-title" },
      h("h2", { id: "record-form-title" }, id === null ? `New ${s.singular}` : `Edit ${s.singular}`),
      s.usage && current ? h("div", { class: "form-usage" }, h("h3", {}, "This period, cluster-wide"), usageBar(current)) : null,
      idView,
      controls.map((c) => c.el),
      formError,
      h("div", { class: "buttons" }, cancel, save),
    );
    el.addEventListener("submit", async (event) => {
      event.preventDefault();
      form.clearErrors();
      formError.hidden = true;
      formError.textContent = "";
      const body = {};
      s.fields.forEach((f, i) => {
        const v = controls[i].read();
        if (v !== undefined) body[f.name] = v;
      });
      if (idField) {
        const typed = idField.read().trim();
        if (typed) body.id = typed;
      }
      save.disabled = true;
      let answer;
      try {
        answer = id === null ? await ctx.api("POST", base, body) : await ctx.api("PUT", itemPath(id), body);
      } catch (e) {
        save.disabled = false;
        if (!alive) return;
        const placed = e && e.status === 400 && e.param && form.showError(e.param, e.message);
        if (!placed) {
          formError.textContent = e && e.message ? e.message : String(e);
          formError.hidden = false;
          formError.focus();
        }
        return;
      }
      if (!alive) return;
      ctx.toast(`${id === null ? "Created" : "Saved"} ${s.singular} ${answer.id}.`, "ok");
      if (id === null && s.path === "keys" && typeof answer.secret === "string") showSecret(answer);
      else showList();
    });
    view.append(el);
    const first = el.querySelector("input, select, textarea");
    if (first) first.focus();
  }

  // -- a new key's secret, once --

  function showSecret(answer) {
    clear(view);
    const input = h("input", {
      id: "key-secret",
      type: "text",
      readonly: true,
      class: "secret",
      value: answer.secret,
      "data-testid": "key-secret",
      spellcheck: "false",
      autocomplete: "off",
    });
    const status = h("span", { class: "copy-status", "aria-live": "polite", "data-testid": "copy-status" });
    const copy = h(
      "button",
      {
        type: "button",
        class: "primary",
        "data-testid": "copy-secret",
        onclick: async () => {
          status.textContent = (await copyText(input)) ? "Copied to the clipboard." : "Selected: press Ctrl+C (⌘C) to copy.";
        },
      },
      "Copy",
    );
    const done = h(
      "button",
      {
        type: "button",
        "data-testid": "secret-done",
        onclick: () => {
          input.value = "";
          showList();
        },
      },
      "Done: I have stored it",
    );
    view.append(
      h(
        "div",
        { class: "secret-panel", role: "region", "aria-labelledby": "secret-title" },
        h("h2", { id: "secret-title" }, `Key ${answer.id} created`),
        h(
          "p",
          { class: "warn-text" },
          "Copy the secret now. It is shown only this once: only its SHA-256 is stored, so it cannot be shown again (create a new key to rotate it).",
        ),
        h("label", { for: input.id }, "Secret"),
        h("div", { class: "secret-row" }, input, copy),
        status,
        h("div", { class: "buttons" }, done),
      ),
    );
    input.focus();
    input.select();
  }

  showList();
  return () => {
    alive = false;
    if (dialog.open) dialog.close();
  };
}

/** Copies the input's text: the clipboard API where the page may use it, else the
 * selection and execCommand; false when only the selection is left for the user. */
async function copyText(input) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(input.value);
      return true;
    }
  } catch (_) {
    // Refused (no permission, document not focused): fall back to the selection.
  }
  input.focus();
  input.select();
  try {
    return document.execCommand("copy");
  } catch (_) {
    return false;
  }
}

/** The collections whose ids a spec's fields offer (`ref` and `suggest`). */
function refNames(fields) {
  const names = new Set();
  const walk = (fs) =>
    fs.forEach((f) => {
      if (f.ref) names.add(f.ref);
      if (f.suggest) names.add(f.suggest);
      if (f.fields) walk(f.fields);
      if (f.variants) f.variants.forEach((v) => walk(v.fields));
    });
  walk(fields);
  return [...names];
}

// ---- budget usage -------------------------------------------------------------------

/** Spend against the limit as a bar with its text (and requests against the
 * maximum), from the `usage` of a budget's GET. */
function usageBar(budget) {
  const u = budget.usage;
  if (!u) return h("span", { class: "muted" }, "no usage reported");
  const spend = `${u.spend_usd} USD`;
  const limit = budget.limit === null || budget.limit === undefined ? null : nanosOf(budget.limit);
  const parts = [];
  if (limit !== null) {
    const used = BigInt(u.spend_nanos);
    // A limit of 0 refuses every request: show it full.
    const ratio = limit === 0n ? 1 : Number((used * 10000n) / limit) / 10000;
    const pct = Math.min(100, ratio * 100);
    const state = ratio >= 1 ? "over" : ratio >= 0.8 ? "warn" : "ok";
    const word = limit === 0n ? "a limit of 0 refuses every request" : ratio >= 1 ? "limit reached" : ratio >= 0.8 ? "near the limit" : "within the limit";
    const fill = h("div", { class: "bar-fill" });
    fill.style.width = `${pct.toFixed(1)}%`;
    parts.push(
      h(
        "div",
        {
          class: `bar bar-${state}`,
          role: "progressbar",
          "aria-valuemin": "0",
          "aria-valuemax": "100",
          "aria-valuenow": pct.toFixed(1),
          "aria-label": `Spend of budget ${budget.id}`,
          "data-testid": "budget-bar",
          "data-state": state,
        },
        fill,
      ),
      h(
        "span",
        { class: "bar-text", "data-testid": "budget-spend" },
        `${spend} of ${budget.limit} USD (${(ratio * 100).toFixed(1)} %, ${word})`,
      ),
    );
  } else {
    parts.push(h("span", { class: "bar-text", "data-testid": "budget-spend" }, `${spend} spent (no spend limit)`));
  }
  const requests =
    budget.max_requests === null || budget.max_requests === undefined
      ? `${u.requests} requests`
      : `${u.requests} of ${budget.max_requests} requests${u.requests >= budget.max_requests ? " (limit reached)" : ""}`;
  const reset = u.resets_at_ms === null ? "never resets" : `resets ${fmtTime(u.resets_at_ms)}`;
  parts.push(h("span", { class: "bar-sub muted" }, `${requests}, ${u.tokens} tokens; ${reset}`));
  return h("div", { class: "usage" }, parts);
}

// ---- the form -------------------------------------------------------------------------

/** The inputs of one record form: builds fields from specs, reads them back in the
 * record's shape, and places the API's errors by field path. */
class Form {
  constructor(prefix, refs) {
    this.prefix = prefix;
    this.refs = refs;
    /** path → { slot, control, describedBy } */
    this.paths = new Map();
    this.shown = [];
  }

  /** Registers the error slot (and the control it describes) of `path`. */
  slot(path, control, helpId) {
    const slot = h("p", {
      class: "field-error",
      id: domId(`${this.prefix}-err`, path),
      "data-testid": `field-error-${path}`,
      hidden: true,
    });
    this.paths.set(path, { slot, control, helpId });
    return slot;
  }

  /** Shows `message` at the field `param` names, or the nearest enclosing one
   * (`aliases[1]` → `aliases`); false when no field of the form encloses it. */
  showError(param, message) {
    let path = param;
    while (path && !this.paths.has(path)) {
      const cut = Math.max(path.lastIndexOf("."), path.lastIndexOf("["));
      path = cut > 0 ? path.slice(0, cut) : "";
    }
    const entry = path && this.paths.get(path);
    if (!entry) return false;
    entry.slot.textContent = message;
    entry.slot.hidden = false;
    if (entry.control) {
      entry.control.setAttribute("aria-invalid", "true");
      entry.control.setAttribute("aria-describedby", [entry.slot.id, entry.helpId].filter(Boolean).join(" "));
      entry.control.focus();
    }
    this.shown.push(entry);
    return true;
  }

  clearErrors() {
    for (const entry of this.shown) {
      entry.slot.hidden = true;
      entry.slot.textContent = "";
      if (entry.control) {
        entry.control.removeAttribute("aria-invalid");
        if (entry.helpId) entry.control.setAttribute("aria-describedby", entry.helpId);
        else entry.control.removeAttribute("aria-describedby");
      }
    }
    this.shown = [];
  }

  /** The field `f` at `path` holding `value` (undefined: a new record's default):
   * `{ el, read() }`, where read() answers the value to send or undefined to leave
   * the field out. */
  field(f, path, value) {
    const id = domId(this.prefix, path);
    const helpText = [f.help, f.ref && f.type === "list" ? known(this.refs[f.ref]) : null].filter(Boolean).join(" ");
    const helpId = helpText ? `${id}-help` : null;
    const help = helpText ? h("p", { class: "help", id: helpId }, helpText) : null;
    const label = (forId) =>
      h("label", { for: forId }, f.label, f.required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null);
    const common = {
      id,
      name: path,
      "data-testid": `field-${path}`,
      "aria-describedby": helpId,
      "aria-required": f.required ? "true" : null,
    };
    const wrap = (control, ...rest) =>
      h("div", { class: `field field-${f.type}` }, label(id), control, help, this.slot(path, control, helpId), rest);

    switch (f.type) {
      case "text":
      case "money":
      case "number": {
        const initial = value === undefined ? f.default : value;
        const input = h("input", {
          ...common,
          type: "text",
          inputmode: f.type === "number" ? "numeric" : f.type === "money" ? "decimal" : null,
          autocomplete: "off",
          spellcheck: "false",
          value: initial === null || initial === undefined ? "" : String(initial),
          list: f.suggest ? `${this.prefix}-dl-${f.suggest}` : null,
        });
        const datalist = f.suggest
          ? h("datalist", { id: `${this.prefix}-dl-${f.suggest}` }, (this.refs[f.suggest] || []).map((v) => h("option", { value: v })))
          : null;
        return {
          el: wrap(input, datalist),
          read: () => {
            const t = f.type === "text" ? input.value : input.value.trim();
            if (t === "") {
              if (f.nullable) return null;
              return f.type === "text" ? "" : undefined;
            }
            if (f.type === "number") return /^-?\d+$/.test(t) ? Number(t) : t;
            return t;
          },
        };
      }
      case "select": {
        const opts = f.ref ? [["", "— none —"], ...(this.refs[f.ref] || []).map((v) => [v, v])] : f.options;
        const initial = value === undefined ? (f.default !== undefined ? f.default : f.ref ? "" : opts[0][0]) : value === null ? "" : value;
        if (!opts.some(([v]) => v === initial)) opts.push([initial, `${initial} (missing)`]);
        const select = h("select", common, opts.map(([v, text]) => h("option", { value: v }, text)));
        select.value = initial; // once its options are in
        return {
          el: wrap(select),
          read: () => (select.value === "" && f.ref ? null : select.value),
        };
      }
      case "checkbox": {
        const input = h("input", {
          ...common,
          type: "checkbox",
          checked: value === undefined ? Boolean(f.default) : Boolean(value),
        });
        return {
          el: h(
            "div",
            { class: "field field-checkbox" },
            input,
            label(id),
            help,
            this.slot(path, input, helpId),
          ),
          read: () => input.checked,
        };
      }
      case "list":
      case "map": {
        const text =
          f.type === "list"
            ? (Array.isArray(value) ? value : []).join("\n")
            : Object.entries(value && typeof value === "object" ? value : {})
                .map(([k, v]) => `${k}=${v}`)
                .join("\n");
        const area = h("textarea", { ...common, rows: 3, spellcheck: "false", value: text });
        return {
          el: wrap(area),
          read: () => {
            if (f.type === "list") {
              return area.value
                .split(/[\n,]/)
                .map((v) => v.trim())
                .filter(Boolean);
            }
            const map = {};
            for (const line of area.value.split("\n")) {
              if (!line.trim()) continue;
              const at = line.indexOf("=");
              if (at < 0) map[line.trim()] = "";
              else map[line.slice(0, at).trim()] = line.slice(at + 1).trim();
            }
            return map;
          },
        };
      }
      case "datetime": {
        const input = h("input", {
          ...common,
          type: "datetime-local",
          step: "1",
          value: value === null || value === undefined ? "" : localInput(value),
        });
        return {
          el: wrap(input),
          read: () => {
            if (input.value === "") return null;
            const ms = new Date(input.value).getTime();
            return Number.isNaN(ms) ? input.value : ms;
          },
        };
      }
      case "rows":
        return this.rows(f, path, value, help, helpId);
      case "variant":
        return this.variant(f, path, value, help, helpId);
      default:
        throw new Error(`unknown field type ${f.type}`);
    }
  }

  /** A list of objects (a route's targets): one line of sub-fields per element,
   * named `path[i].sub`, with add and remove buttons. */
  rows(f, path, value, help, helpId) {
    const list = h("div", { class: "rows" });
    let items = [];
    const defaults = () => Object.fromEntries(f.fields.filter((s) => s.default !== undefined).map((s) => [s.name, s.default]));
    const render = (data) => {
      for (const [p] of [...this.paths]) if (p.startsWith(`${path}[`)) this.paths.delete(p);
      clear(list);
      items = data.map((row, i) => {
        const subs = f.fields.map((s) => this.field(s, `${path}[${i}].${s.name}`, row ? row[s.name] : undefined));
        const remove = h(
          "button",
          {
            type: "button",
            class: "small",
            "data-testid": `remove-${path}[${i}]`,
            "aria-label": `Remove ${f.label.toLowerCase()} ${i + 1}`,
            onclick: () => render(current().filter((_, j) => j !== i)),
          },
          "Remove",
        );
        list.append(h("div", { class: "row", role: "group", "aria-label": `${f.label} ${i + 1}` }, subs.map((c) => c.el), remove));
        return subs;
      });
    };
    const current = () =>
      items.map((subs) => {
        const o = {};
        f.fields.forEach((s, j) => {
          const v = subs[j].read();
          if (v !== undefined) o[s.name] = v;
        });
        return o;
      });
    render(Array.isArray(value) && value.length ? value : [defaults()]);
    const add = h(
      "button",
      { type: "button", class: "small", "data-testid": `add-${path}`, onclick: () => render([...current(), defaults()]) },
      `Add ${f.label.toLowerCase().replace(/s$/, "")}`,
    );
    const legendId = domId(this.prefix, `${path}-legend`);
    const fieldset = h(
      "fieldset",
      { class: "field field-rows", "aria-describedby": helpId, "data-testid": `field-${path}` },
      h("legend", { id: legendId }, f.label, f.required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null),
      help,
      list,
      add,
    );
    fieldset.append(this.slot(path, add, helpId));
    return { el: fieldset, read: current };
  }

  /** A serde externally tagged enum (a guardrail's kind): a select of the variant
   * and, for the chosen one, its fields named `path.variant.sub`. */
  variant(f, path, value, help, helpId) {
    const chosen = value && typeof value === "object" ? Object.keys(value)[0] : f.variants[0].value;
    const id = domId(this.prefix, path);
    const select = h(
      "select",
      { id, name: path, "data-testid": `field-${path}`, "aria-describedby": helpId },
      f.variants.map((v) => h("option", { value: v.value }, v.label)),
    );
    select.value = chosen;
    const panels = f.variants.map((v) => {
      const inner = value && typeof value === "object" && value[v.value] ? value[v.value] : undefined;
      const subs = v.fields.map((s) => this.field(s, `${path}.${v.value}.${s.name}`, inner ? inner[s.name] : undefined));
      const vpath = `${path}.${v.value}`;
      const panel = h(
        "fieldset",
        { class: "variant", hidden: v.value !== chosen, "data-variant": v.value },
        h("legend", {}, v.label),
        v.help ? h("p", { class: "help" }, v.help) : null,
        subs.map((c) => c.el),
      );
      panel.append(this.slot(vpath, subs.length ? panel.querySelector("input, select, textarea") : null, null));
      return { v, subs, panel };
    });
    select.addEventListener("change", () => panels.forEach((p) => (p.panel.hidden = p.v.value !== select.value)));
    const el = h(
      "div",
      { class: "field field-variant" },
      h("label", { for: id }, f.label, f.required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null),
      select,
      help,
      this.slot(path, select, helpId),
      panels.map((p) => p.panel),
    );
    return {
      el,
      read: () => {
        const p = panels.find((x) => x.v.value === select.value);
        const o = {};
        p.v.fields.forEach((s, j) => {
          const v = p.subs[j].read();
          if (v !== undefined) o[s.name] = v;
        });
        return { [p.v.value]: o };
      },
    };
  }
}

function known(ids) {
  return ids && ids.length ? `Existing: ${ids.slice(0, 20).join(", ")}${ids.length > 20 ? ", …" : ""}.` : null;
}
