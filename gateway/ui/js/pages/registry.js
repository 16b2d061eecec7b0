// Every page of the app, in navigation order. `path` is the URL the router matches
// (exactly), `nav` the link text (a page without `nav` is not in the menu), `load`
// imports the page module, which exports `mount(root, ctx)`.
// U2 adds overview and usage, U3 the collection pages: one line each.

export const pages = [
  { path: "/admin/dashboard/overview", title: "Overview", nav: "Overview", load: () => import("./overview.js") },
  { path: "/admin/dashboard/usage", title: "Usage log", nav: "Usage", load: () => import("./usage.js") },
  { path: "/admin/dashboard/cluster", title: "Cluster", nav: "Cluster", load: () => import("./cluster.js") },
  { path: "/admin/dashboard/settings/routing", title: "Settings: Routing", nav: "Settings", load: () => import("./settings.js") },
];
