// Every page of the app, in navigation order. `path` is the URL the router matches
// (exactly), `nav` the link text (a page without `nav` is not in the menu), `load`
// imports the page module, which exports `mount(root, ctx)`.
// U2 adds overview and usage, U3 the collection pages: one line each.

export const pages = [
  { path: "/admin/dashboard/overview", title: "Overview", nav: "Overview", load: () => import("./overview.js") },
  { path: "/admin/dashboard/usage", title: "Usage log", nav: "Usage", load: () => import("./usage.js") },
  { path: "/admin/dashboard/cluster", title: "Cluster", nav: "Cluster", load: () => import("./cluster.js") },
  // U3: the collection pages, one generic module (collection.js) per collection spec (collections.js).
  { path: "/admin/dashboard/keys", title: "Auth keys", nav: "Keys", load: () => import("./collection.js").then((m) => m.page("keys")) },
  { path: "/admin/dashboard/providers", title: "Providers", nav: "Providers", load: () => import("./collection.js").then((m) => m.page("providers")) },
  { path: "/admin/dashboard/models", title: "Models", nav: "Models", load: () => import("./collection.js").then((m) => m.page("models")) },
  { path: "/admin/dashboard/routes", title: "Routes", nav: "Routes", load: () => import("./collection.js").then((m) => m.page("routes")) },
  { path: "/admin/dashboard/guardrails", title: "Guardrails", nav: "Guardrails", load: () => import("./collection.js").then((m) => m.page("guardrails")) },
  { path: "/admin/dashboard/workflows", title: "Workflows", nav: "Workflows", load: () => import("./collection.js").then((m) => m.page("workflows")) },
  { path: "/admin/dashboard/pricing", title: "Pricing", nav: "Pricing", load: () => import("./collection.js").then((m) => m.page("pricing")) },
  { path: "/admin/dashboard/budgets", title: "Budgets", nav: "Budgets", load: () => import("./collection.js").then((m) => m.page("budgets")) },
  { path: "/admin/dashboard/settings/routing", title: "Settings: Routing", nav: "Settings", load: () => import("./settings.js") },
];
