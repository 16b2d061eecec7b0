// Settings → Routing: this node's cluster metadata as configured, read-only
// (GET /admin/api/cluster/settings). It changes only with the node's configuration
// (aurora.yaml `cluster:` or CLUSTER_* variables) and a restart, so it is not editable here.

import { el, clear } from "../dom.js";

export function mount(root, ctx) {
  const body = el("div", { "data-testid": "settings-body" }, el("p", { class: "muted" }, "loading…"));
  root.append(
    el("h1", {}, "Settings"),
    el("nav", { class: "toolbar", "aria-label": "Settings sections" },
      el("a", { href: "/admin/dashboard/settings/routing", "aria-current": "page" }, "Routing")),
    body);
  let stopped = false;
  ctx.api("GET", "/admin/api/cluster/settings").then((s) => {
    if (stopped) return;
    clear(body).append(view(s));
  }).catch((e) => {
    if (stopped || e.status === 401) return;
    clear(body).append(el("p", { class: "notice notice-bad", role: "alert" }, `Could not load the settings: ${e.message}`));
  });
  return () => { stopped = true; };
}

function row(label, value, key) {
  return [el("dt", {}, label), el("dd", { "data-testid": `setting-${key}` }, value === "" || value === null || value === undefined ? "—" : value)];
}

function view(s) {
  const heartbeat = `${(s.heartbeat_interval_ms / 1000).toLocaleString("en", { maximumFractionDigits: 3 })} s`;
  return el("section", { class: "card" },
    el("h2", {}, "Routing: cluster metadata"),
    el("p", { class: "muted" }, "Read-only: set in the node's configuration (",
      el("code", {}, "cluster:"), " in aurora.yaml or ", el("code", {}, "CLUSTER_*"),
      " variables) and applied at start."),
    s.enabled ? null : el("p", { class: "notice notice-info", "data-testid": "clustering-off" },
      "Clustering is off: this node runs alone in ", el("code", {}, "single_node"), " mode."),
    el("dl", { class: "kv" },
      row("Node ID", s.node_id, "node-id"),
      row("Node name", s.node_name, "node-name"),
      row("Region", s.region, "region"),
      row("Zone", s.zone, "zone"),
      row("Advertise URL", s.advertise_url, "advertise-url"),
      row("Sync address", s.sync_addr, "sync-addr"),
      row("Failover mode", el("code", {}, s.failover_mode), "failover-mode"),
      row("Heartbeat interval", heartbeat, "heartbeat-interval"),
      row("Version", s.version, "version")));
}
