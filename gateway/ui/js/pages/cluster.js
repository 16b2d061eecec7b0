// The cluster page: this node's view of the cluster (GET /admin/api/cluster/status and
// /nodes), nodes grouped by region and zone, refreshed every 30 s and on demand; the
// leader's page also has the switchover and forget controls, each behind a
// confirmation. With clustering off it says so and shows no cluster controls.

import { el, clear, fmtAgo, fmtTime } from "../dom.js";

/** Seconds between automatic refreshes, as the seed documents it. */
export const REFRESH_MS = 30000;

/**
 * The refresh period: 30 s, unless this tab's session storage holds
 * `aurora.refresh_ms` (at least 500): the browser tests use it to see the timer fire.
 */
function refreshMs() {
  const override = Number(sessionStorage.getItem("aurora.refresh_ms"));
  return Number.isFinite(override) && override >= 500 ? override : REFRESH_MS;
}

const STATE_WORD = { alive: "alive", suspect: "suspect", dead: "failed", left: "left", joining: "joining" };

export function mount(root, ctx) {
  const period = refreshMs();
  root.setAttribute("data-refresh-ms", String(period));
  let refreshes = 0;
  let busy = false;
  let stopped = false;

  const updated = el("span", { class: "muted", "data-testid": "updated-at", "aria-live": "polite" }, "loading…");
  const refreshButton = el("button", { type: "button", "data-testid": "refresh", onclick: () => refresh() }, "Refresh");
  const error = el("div", { role: "alert", "data-testid": "cluster-error" });
  const body = el("div", { "data-testid": "cluster-body" });
  const dialog = confirmDialog();
  root.append(
    el("div", { class: "toolbar" },
      el("h1", {}, "Cluster"),
      el("span", { class: "spacer" }),
      updated,
      el("span", { class: "muted" }, `· refreshes every ${Math.round(period / 1000)} s`),
      refreshButton),
    error, body, dialog.node);

  async function refresh() {
    if (busy || stopped) return;
    busy = true;
    refreshButton.disabled = true;
    try {
      const [status, nodes] = await Promise.all([
        ctx.api("GET", "/admin/api/cluster/status"),
        ctx.api("GET", "/admin/api/cluster/nodes"),
      ]);
      if (stopped) return;
      clear(error);
      render(body, status, (nodes && nodes.data) || [], { ctx, dialog, refresh });
      refreshes += 1;
      updated.textContent = `updated ${fmtTime(Date.now())}`;
      updated.setAttribute("data-refreshes", String(refreshes));
    } catch (e) {
      if (stopped || e.status === 401) return;
      clear(error).appendChild(el("p", { class: "notice notice-bad" },
        el("strong", {}, "Could not load the cluster status: "), e.message,
        " The last known state is shown below."));
    } finally {
      busy = false;
      refreshButton.disabled = false;
    }
  }

  refresh();
  const timer = setInterval(refresh, period);
  return () => {
    stopped = true;
    clearInterval(timer);
    dialog.close();
  };
}

function render(body, status, nodes, env) {
  clear(body);
  if (!status.enabled) {
    body.append(el("section", { class: "card", "data-testid": "clustering-off" },
      el("h2", {}, "Clustering is off"),
      el("p", {}, "This node runs alone (failover mode ", el("code", {}, "single_node"),
        "): there are no peers, no leader election and no cluster controls. Turn it on with ",
        el("code", {}, "cluster.enabled: true"), " (see docs/operations.md)."),
      nodes.length ? nodeTables(nodes, null) : null));
    return;
  }
  const self = nodes.find((n) => n.is_self) || null;
  const isLeader = Boolean(self && self.is_leader);
  const elects = status.mode !== "single_node";
  body.append(summary(status, nodes));
  if (status.drift_warnings && status.drift_warnings.length) {
    body.append(el("div", { class: "notice notice-warn", "data-testid": "drift-warnings" },
      el("strong", {}, "Drift: "), "members whose version or cluster settings differ from this node's.",
      el("ul", {}, status.drift_warnings.map((w) => el("li", {}, w)))));
  }
  if (status.warnings && status.warnings.length) {
    body.append(el("div", { class: "notice notice-warn", "data-testid": "warnings" },
      el("strong", {}, "Warnings:"), el("ul", {}, status.warnings.map((w) => el("li", {}, w)))));
  }
  const strangers = (status.identity && status.identity.strangers) || [];
  if (strangers.length) {
    body.append(el("div", { class: "notice notice-bad", "data-testid": "strangers" },
      el("strong", {}, "Refused peers:"), el("ul", {}, strangers.map((s) => el("li", {}, s.message)))));
  }
  if (elects && isLeader) body.append(controls(status, nodes, env));
  else if (elects) {
    body.append(el("p", { class: "notice notice-info", "data-testid": "not-leader-note" },
      "Switchover and forget are carried out by the leader; this node is not it. ",
      leaderLink(status.leader_advertise_url)));
  }
  body.append(nodeTables(nodes, elects && isLeader ? env : null));
}

function stat(label, value, testid) {
  return el("div", { class: "stat", "data-testid": testid },
    el("div", { class: "label" }, label), el("div", { class: "value" }, value));
}

function yesNo(value, reason) {
  return value
    ? el("span", { class: "state state-ok" }, "yes")
    : el("span", { class: "state state-bad" }, reason ? `no: ${reason}` : "no");
}

function summary(status, nodes) {
  const leaderRow = nodes.find((n) => n.is_leader);
  const leader = leaderRow ? leaderRow.name : (status.leader || "none");
  const voters = status.voters || [];
  return el("section", {},
    el("div", { class: "summary" },
      stat("Nodes alive", `${status.node_count} of ${nodes.length}`, "node-count"),
      stat("Leader", leader, "summary-leader"),
      stat("Failover mode", el("code", {}, status.mode), "summary-mode"),
      stat("Epoch", String(status.epoch), "summary-epoch"),
      stat("Can fail over", yesNo(status.can_fail_over, status.failover_reason), "can-fail-over"),
      stat("This node serves", yesNo(status.serving), "summary-serving")),
    el("div", { class: "card" },
      el("dl", { class: "kv" },
        el("dt", {}, "This node"), el("dd", {}, `${status.this_node.name} (${status.this_node.id}, ${status.this_node.status})`),
        el("dt", {}, "Voters"), el("dd", { "data-testid": "voters" },
          voters.length ? voters.map((v, i) => [i ? ", " : "", v.name || v.id]) : "none yet"),
        status.state ? [el("dt", {}, "Replicated state"), el("dd", {}, `${status.state.live_records} records, digest `, el("code", {}, status.state.digest))] : null)));
}

/** Tables of nodes, one per zone, grouped under their region. */
function nodeTables(nodes, env) {
  const regions = new Map();
  for (const n of nodes) {
    const region = n.region || "(no region)";
    const zone = n.zone || "(no zone)";
    if (!regions.has(region)) regions.set(region, new Map());
    const zones = regions.get(region);
    if (!zones.has(zone)) zones.set(zone, []);
    zones.get(zone).push(n);
  }
  const out = el("section", { "data-testid": "nodes" }, el("h2", {}, "Nodes"));
  for (const region of [...regions.keys()].sort()) {
    const zones = regions.get(region);
    const section = el("section", { class: "region", "data-testid": "region", "data-region": region },
      el("h3", {}, `Region ${region}`));
    for (const zone of [...zones.keys()].sort()) {
      const rows = zones.get(zone).sort((a, b) => a.name.localeCompare(b.name));
      section.append(el("div", { class: "table-wrap" }, el("table", { class: "nodes", "data-testid": "zone", "data-zone": zone },
        el("caption", {}, `Zone ${zone}`),
        el("thead", {}, el("tr", {},
          ["Node", "State", "Advertise URL", "Sync address", "Last heartbeat", "Sync lag", "Incarnation"].map((h) => el("th", { scope: "col" }, h)),
          env ? el("th", { scope: "col" }, "Actions") : null)),
        el("tbody", {}, rows.map((n) => nodeRow(n, env))))));
    }
    out.append(section);
  }
  return out;
}

function nodeRow(n, env) {
  const word = STATE_WORD[n.state] || n.state;
  const lag = n.is_self ? "—" : `${n.sync_lag.versions} versions, ${n.sync_lag.millis} ms`;
  const canForget = env && !n.is_self && (n.state === "dead" || n.state === "left");
  return el("tr", { "data-testid": "node-row", "data-node": n.name, "data-state": n.state },
    el("th", { scope: "row" }, n.name,
      n.is_leader ? el("span", { class: "badge badge-leader", "data-testid": "leader-badge" }, "leader") : null,
      n.is_self ? el("span", { class: "badge badge-self" }, "this node") : null,
      n.id !== n.name ? el("div", { class: "muted" }, el("code", {}, n.id)) : null),
    el("td", {}, el("span", { class: `state state-${n.state}`, "data-testid": "node-state" }, word)),
    el("td", {}, n.advertise_url),
    el("td", {}, el("code", {}, n.sync_addr)),
    el("td", {}, n.is_self ? "— (this node)" : fmtAgo(n.last_heartbeat_ms_ago)),
    el("td", { "data-testid": "sync-lag" }, lag),
    el("td", {}, String(n.incarnation)),
    env ? el("td", {}, canForget
      ? el("button", { type: "button", class: "danger", "data-testid": "forget", "aria-label": `Forget ${n.name}`, onclick: () => forget(n, env) }, "Forget…")
      : "—") : null);
}

function controls(status, nodes, env) {
  const voters = (status.voters || []).filter((v) => v.id !== status.this_node.id);
  const alive = new Set(nodes.filter((n) => n.state === "alive").map((n) => n.id));
  const targets = voters.filter((v) => alive.has(v.id));
  const select = el("select", { id: "switchover-to", "data-testid": "switchover-to" },
    targets.map((v) => el("option", { value: v.id }, v.name ? `${v.name} (${v.id})` : v.id)));
  const button = el("button", { type: "button", class: "primary", "data-testid": "switchover", disabled: targets.length === 0,
    onclick: () => switchover(select.value, env) }, "Switch over…");
  return el("section", { class: "card", "data-testid": "leader-controls" },
    el("h2", {}, "Leader controls"),
    el("p", { class: "muted" }, "This node holds the failover lease. A planned switchover hands it to another voter (for maintenance of this node); forget takes a node that is gone for good off the voter roster."),
    el("div", { class: "controls" },
      el("div", {}, el("label", { for: "switchover-to" }, "Hand the lease to"), select),
      button,
      targets.length === 0 ? el("span", { class: "muted" }, "No other alive voter to hand the lease to.") : null));
}

async function switchover(to, env) {
  if (!to) return;
  const ok = await env.dialog.ask("Switch over?", `This node stops leading at once and hands the lease to ${to}. Clients of an active_passive cluster move to the new leader.`, "Switch over");
  if (!ok) return;
  try {
    const answer = await env.ctx.api("POST", "/admin/api/cluster/switchover", { to });
    const now = answer && answer.leader ? (answer.leader.name || answer.leader.id) : "none yet";
    env.ctx.toast(answer && answer.completed ? `Switched over: ${now} leads at epoch ${answer.epoch}.` : `Switchover started; leader now: ${now}.`, "ok");
  } catch (e) {
    env.ctx.toast(`Switchover refused: ${e.message}`, "error");
  }
  env.refresh();
}

async function forget(node, env) {
  const ok = await env.dialog.ask(`Forget ${node.name}?`, `${node.name} is taken off the voter roster on every node. Do this only if it is gone for good: to come back it must be admitted as a new member.`, "Forget");
  if (!ok) return;
  try {
    const answer = await env.ctx.api("POST", "/admin/api/cluster/forget", { node: node.id });
    env.ctx.toast(answer && answer.removed === false ? `Forget of ${node.name} sent; not yet seen.` : `${node.name} was forgotten.`, "ok");
  } catch (e) {
    env.ctx.toast(`Forget refused: ${e.message}`, "error");
  }
  env.refresh();
}

/** One `<dialog>` whose `ask(title, text, action)` resolves to whether it was confirmed. */
function confirmDialog() {
  const title = el("h2", { id: "confirm-title" });
  const text = el("p", { id: "confirm-text" });
  const yes = el("button", { type: "button", class: "danger", "data-testid": "confirm-yes" }, "Confirm");
  const no = el("button", { type: "button", "data-testid": "confirm-no" }, "Cancel");
  const node = el("dialog", { "aria-labelledby": "confirm-title", "aria-describedby": "confirm-text", "data-testid": "confirm-dialog" },
    title, text, el("div", { class: "actions" }, no, yes));
  let settle = null;
  const done = (value) => {
    if (settle) { settle(value); settle = null; }
    if (node.open) node.close();
  };
  yes.addEventListener("click", () => done(true));
  no.addEventListener("click", () => done(false));
  node.addEventListener("close", () => done(false));
  return {
    node,
    ask(heading, message, action) {
      title.textContent = heading;
      text.textContent = message;
      yes.textContent = action;
      return new Promise((resolve) => {
        settle = resolve;
        node.showModal();
        no.focus();
      });
    },
    close: () => done(false),
  };
}

// The leader's UI as a link, only for an http(s) URL: the address is gossiped
// metadata, so anything else (a typo, a hostile member) is shown as text, not linked.
function leaderLink(url) {
  if (!url) return "No leader is known right now.";
  let parsed = null;
  try { parsed = new URL(url); } catch (_) { parsed = null; }
  if (!parsed || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) {
    return `The leader advertises ${url}, which is not an http(s) URL.`;
  }
  const href = `${url.replace(/\/+$/, "")}/admin/dashboard/cluster`;
  return ["Open the leader's admin UI at ", el("a", { href, rel: "noreferrer" }, url), "."];
}
