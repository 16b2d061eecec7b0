// Field specs of the replicated collections, one per admin API collection, read by
// the generic page in collection.js.
//
// Each spec mirrors a record of the schema crate (gateway/schema/src/: auth.rs,
// provider.rs, route.rs, guardrail.rs, billing.rs) and, for keys, the fields
// POST/PUT /admin/api/keys accepts (gateway/src/admin/keys.rs). The field `name` is
// the record's serde field, so a field's input and its error slot are named exactly
// as the API's `param` names them (`targets[0].weight`,
// `kind.deny_patterns.patterns`). The limits in the help texts are the schema's
// (gateway/schema/src/limits.rs); the server is the one that enforces them: the
// form does not validate beyond the shape of a value, so the API's own error, next
// to its field, is what the operator sees.
//
// Field types (what collection.js renders and how it reads the value back):
// - text: a string; `nullable` sends null when empty, otherwise "" is sent.
// - number: an integer; empty is null when `nullable`, left out otherwise (the API
//   then names the missing field). Text that is not an integer is sent as typed,
//   so the API's shape error names the field.
// - money: a decimal USD string ("0.15"), as the schema's Money; empty → null when
//   `nullable`.
// - select: one of `options` ([value, label]); `ref` fills the options from another
//   collection (its ids) with a "none" entry that is null.
// - checkbox: a boolean (`default` when creating).
// - list: strings, one per line (or comma-separated); `ref` lists the known ids in
//   the help text.
// - map: string → string, one `key=value` per line.
// - datetime: Unix milliseconds, entered as a local date and time; empty → null.
// - rows: a list of objects, each with the sub-`fields` (a route's targets).
// - variant: a serde externally tagged enum `{variant: {fields}}` (a guardrail's
//   kind), one of `variants` each with its own `fields`.
//
// `id` is the record id: `idRequired` when it is the record's public name (models,
// routes, pricing...), otherwise the API generates one when it is left empty.
// `columns` are the list view's columns; `search` is matched against every field.

const yes = (v) => (v ? "yes" : "no");
const orDash = (v) => (v === null || v === undefined || v === "" ? "—" : String(v));
const listText = (v) => (Array.isArray(v) && v.length ? v.join(", ") : "—");

/** The collections in menu order; `path` is the admin API's and the page's segment. */
export const COLLECTIONS = [
  {
    path: "keys",
    title: "Auth keys",
    singular: "auth key",
    idRequired: false,
    idHelp: "Left empty, the node generates one (key-…). Ids cannot be renamed.",
    intro:
      "Client API keys. The secret is shown once, when the key is created; only its SHA-256 is stored and replicated.",
    columns: [
      ["Id", (r) => r.id],
      ["Name", (r) => r.name],
      ["Prefix", (r) => (r.key_prefix ? `sk-aurora-${r.key_prefix}…` : "—")],
      ["Budget", (r) => orDash(r.budget_id)],
      ["Workflow", (r) => orDash(r.workflow_id)],
      ["Models", (r) => (r.allowed_models && r.allowed_models.length ? r.allowed_models.join(", ") : "all")],
      ["Disabled", (r) => yes(r.disabled)],
    ],
    fields: [
      { name: "name", label: "Name", type: "text", required: true, help: "Shown to operators: 1 to 1024 bytes." },
      {
        name: "allowed_models",
        label: "Allowed models",
        type: "list",
        help: "Public model or route names this key may call, one per line; empty allows all (at most 256).",
      },
      { name: "budget_id", label: "Budget", type: "select", ref: "budgets", help: "The budget charged for this key's requests." },
      {
        name: "workflow_id",
        label: "Workflow",
        type: "select",
        ref: "workflows",
        help: "The guardrails and routing policy applied to this key's requests.",
      },
      { name: "rpm_limit", label: "Requests per minute", type: "number", nullable: true, help: "At least 1; empty for no limit." },
      { name: "tpm_limit", label: "Tokens per minute", type: "number", nullable: true, help: "At least 1; empty for no limit." },
      {
        name: "max_parallel_requests",
        label: "Parallel requests",
        type: "number",
        nullable: true,
        help: "Most requests of this key in flight at once on one node; at least 1; empty for no limit.",
      },
      { name: "expires_at_ms", label: "Expires at", type: "datetime", help: "Refused from this instant (your local time); empty never expires." },
      { name: "disabled", label: "Disabled", type: "checkbox", default: false, help: "A disabled key is refused (403)." },
      { name: "metadata", label: "Metadata", type: "map", help: "Free-form labels, one key=value per line (at most 64)." },
    ],
  },
  {
    path: "providers",
    title: "Providers",
    singular: "provider",
    idRequired: true,
    idLabel: "Name (id)",
    idHelp: "The provider's name, the `openai` of `openai/gpt-4o-mini`. Letters, digits and . _ : / @ -",
    intro:
      "Upstream endpoints. A replicated provider replaces a provider of the node's YAML catalog of the same name. The API key itself is never stored: name the environment variable that holds it on each node.",
    columns: [
      ["Name", (r) => r.id],
      ["Kind", (r) => r.kind],
      ["Base URL", (r) => orDash(r.base_url)],
      ["Key variable", (r) => orDash(r.api_key_env)],
      ["Timeout (ms)", (r) => String(r.timeout_ms)],
      ["Retries", (r) => String(r.max_retries)],
    ],
    fields: [
      {
        name: "kind",
        label: "Kind",
        type: "select",
        required: true,
        options: [
          ["open_ai_compatible", "OpenAI-compatible"],
          ["anthropic", "Anthropic"],
          ["mock", "Mock (built-in)"],
        ],
        help: "The upstream protocol.",
      },
      { name: "base_url", label: "Base URL", type: "text", help: "http(s)://host[:port][/path]; may be empty for the mock." },
      {
        name: "api_key_env",
        label: "API key variable",
        type: "text",
        nullable: true,
        help: "The NAME of the environment variable with the upstream key (it must start with the node's provider_env_prefix).",
      },
      { name: "timeout_ms", label: "Timeout (ms)", type: "number", required: true, default: 60000, help: "Per attempt, 1 to 600000." },
      { name: "max_retries", label: "Retries", type: "number", required: true, default: 2, help: "On 429, 5xx and timeouts; at most 10." },
      {
        name: "cooldown_ms",
        label: "Cooldown (ms)",
        type: "number",
        required: true,
        default: 30000,
        help: "How long a failing target is skipped; at most 86400000; 0 disables it.",
      },
    ],
  },
  {
    path: "models",
    title: "Models",
    singular: "model",
    idRequired: true,
    idLabel: "Public name (id)",
    idHelp: "The name clients send, by convention provider/model.",
    intro: "Models clients can name. A model without a pricing record is not billed (see its warnings).",
    columns: [
      ["Name", (r) => r.id],
      ["Provider", (r) => r.provider_id],
      ["Upstream model", (r) => r.upstream_model],
      ["Aliases", (r) => listText(r.aliases)],
      ["Enabled", (r) => yes(r.enabled)],
      ["Warnings", (r) => (r.warnings && r.warnings.length ? r.warnings.join("; ") : "—")],
    ],
    fields: [
      {
        name: "provider_id",
        label: "Provider",
        type: "text",
        required: true,
        suggest: "providers",
        help: "A provider's name: a replicated one or one of the node's YAML catalog (e.g. mock).",
      },
      {
        name: "upstream_model",
        label: "Upstream model",
        type: "text",
        required: true,
        help: "The id sent upstream (gpt-4o-mini): no whitespace.",
      },
      { name: "aliases", label: "Aliases", type: "list", help: "Other public names, one per line (at most 256)." },
      { name: "context_window", label: "Context window", type: "number", nullable: true, help: "Tokens; empty when unknown." },
      { name: "enabled", label: "Enabled", type: "checkbox", default: true },
    ],
  },
  {
    path: "routes",
    title: "Routes",
    singular: "route",
    idRequired: true,
    idLabel: "Public name (id)",
    idHelp: "The name clients send; it must not be one of its own targets.",
    intro: "A public name spread over weighted model targets, falling back in order when every target failed.",
    columns: [
      ["Name", (r) => r.id],
      ["Targets", (r) => (r.targets || []).map((t) => `${t.model_id} ×${t.weight}`).join(", ")],
      ["Fallbacks", (r) => listText(r.fallbacks)],
      ["Retries", (r) => String(r.retries)],
    ],
    fields: [
      {
        name: "targets",
        label: "Targets",
        type: "rows",
        required: true,
        help: "1 to 32 models, none twice; traffic is shared in proportion to the weights.",
        fields: [
          { name: "model_id", label: "Model", type: "text", required: true, suggest: "models" },
          { name: "weight", label: "Weight", type: "number", required: true, default: 1 },
        ],
      },
      {
        name: "fallbacks",
        label: "Fallbacks",
        type: "list",
        ref: "models",
        help: "Models tried in order after every target failed, one per line (at most 8, none also a target).",
      },
      { name: "retries", label: "Retries", type: "number", required: true, default: 0, help: "Extra attempts over the targets before the fallbacks; at most 10." },
    ],
  },
  {
    path: "guardrails",
    title: "Guardrails",
    singular: "guardrail",
    idRequired: true,
    idLabel: "Name (id)",
    idHelp: "Workflows name guardrails by this id.",
    intro: "Checks applied to requests of the keys whose workflow names them.",
    columns: [
      ["Name", (r) => r.id],
      ["Kind", (r) => Object.keys(r.kind || {})[0] || "—"],
      ["Enabled", (r) => yes(r.enabled)],
    ],
    fields: [
      {
        name: "kind",
        label: "Kind",
        type: "variant",
        required: true,
        variants: [
          {
            value: "deny_patterns",
            label: "Deny patterns",
            fields: [
              {
                name: "patterns",
                label: "Patterns",
                type: "list",
                required: true,
                help: "Plain substrings (not regexes), one per line: 1 to 256.",
              },
              { name: "case_insensitive", label: "Ignore case", type: "checkbox", default: false },
            ],
          },
          {
            value: "max_input_chars",
            label: "Maximum input length",
            fields: [{ name: "max", label: "Characters", type: "number", required: true, help: "At least 1." }],
          },
          {
            value: "redact",
            label: "Redact",
            help: "Enable at least one category.",
            fields: [
              { name: "emails", label: "Emails", type: "checkbox", default: true },
              { name: "phone_numbers", label: "Phone numbers", type: "checkbox", default: false },
              { name: "secrets", label: "Secrets (API keys, tokens)", type: "checkbox", default: false },
            ],
          },
          {
            value: "allowed_models",
            label: "Allowed models",
            fields: [
              { name: "models", label: "Models", type: "list", required: true, help: "Public names, one per line: 1 to 256." },
            ],
          },
        ],
      },
      { name: "enabled", label: "Enabled", type: "checkbox", default: true },
    ],
  },
  {
    path: "workflows",
    title: "Workflows",
    singular: "workflow",
    idRequired: false,
    idHelp: "Left empty, the node generates one. Keys name workflows by this id.",
    intro: "What an auth key's requests go through: guardrails in order, then routing.",
    columns: [
      ["Id", (r) => r.id],
      ["Name", (r) => r.name],
      ["Guardrails", (r) => listText(r.guardrails)],
      ["Routing", (r) => r.routing],
    ],
    fields: [
      { name: "name", label: "Name", type: "text", required: true, help: "1 to 1024 bytes." },
      {
        name: "guardrails",
        label: "Guardrails",
        type: "list",
        ref: "guardrails",
        help: "Applied in this order, one per line (at most 32).",
      },
      {
        name: "routing",
        label: "Routing",
        type: "select",
        required: true,
        options: [
          ["weighted", "Weighted (at random, by weight)"],
          ["ordered", "Ordered (next target on failure)"],
          ["least_busy", "Least busy (fewest in flight on this node)"],
        ],
      },
    ],
  },
  {
    path: "pricing",
    title: "Pricing",
    singular: "price",
    idRequired: true,
    idLabel: "Model (id)",
    idHelp: "The model's name: the record id is the model it prices.",
    intro: "Prices per million tokens, in USD. A request is billed at the pricing record of the model that served it.",
    columns: [
      ["Model", (r) => r.id],
      ["Input / M", (r) => `${r.input_per_million} USD`],
      ["Output / M", (r) => `${r.output_per_million} USD`],
      ["Cached input / M", (r) => (r.cached_input_per_million === null ? "= input" : `${r.cached_input_per_million} USD`)],
    ],
    fields: [
      {
        name: "input_per_million",
        label: "Input per million tokens (USD)",
        type: "money",
        required: true,
        help: "A decimal such as 0.15, at most 10000.",
      },
      {
        name: "output_per_million",
        label: "Output per million tokens (USD)",
        type: "money",
        required: true,
        help: "A decimal such as 0.6, at most 10000.",
      },
      {
        name: "cached_input_per_million",
        label: "Cached input per million tokens (USD)",
        type: "money",
        nullable: true,
        help: "Empty: billed at the input price.",
      },
    ],
  },
  {
    path: "budgets",
    title: "Budgets",
    singular: "budget",
    idRequired: false,
    idHelp: "Left empty, the node generates one. Keys name budgets by this id.",
    intro:
      "Spend and request limits shared by the keys that name them, enforced cluster-wide per period (UTC). The bar is this period's usage of the whole cluster as this node sees it.",
    usage: true,
    columns: [
      ["Id", (r) => r.id],
      ["Name", (r) => r.name],
      ["Period", (r) => r.period],
      ["Limit", (r) => (r.limit === null ? "none" : `${r.limit} USD`)],
      ["Max requests", (r) => (r.max_requests === null ? "none" : String(r.max_requests))],
    ],
    fields: [
      { name: "name", label: "Name", type: "text", required: true, help: "1 to 1024 bytes." },
      {
        name: "limit",
        label: "Spend limit (USD)",
        type: "money",
        nullable: true,
        help: "Per period, a decimal such as 10; empty tracks spend without a limit; 0 refuses every request.",
      },
      { name: "max_requests", label: "Max requests", type: "number", nullable: true, help: "Per period; empty for no limit." },
      {
        name: "period",
        label: "Period",
        type: "select",
        required: true,
        default: "monthly",
        options: [
          ["hourly", "Hourly"],
          ["daily", "Daily"],
          ["weekly", "Weekly (from Monday)"],
          ["monthly", "Monthly"],
          ["total", "Total (never resets)"],
        ],
      },
      {
        name: "on_partition",
        label: "When cut off",
        type: "select",
        required: true,
        default: "spend_leased",
        help: "What a node that cannot reach the cluster's lease holder does with Max requests.",
        options: [
          ["spend_leased", "Spend what it holds, then refuse"],
          ["fail_closed", "Refuse at once"],
          ["fail_open", "Admit past the limit (requests only)"],
        ],
      },
    ],
  },
];

/** The spec served at `/admin/api/<path>`, or undefined. */
export function spec(path) {
  return COLLECTIONS.find((c) => c.path === path);
}
