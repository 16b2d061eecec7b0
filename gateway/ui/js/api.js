// The one way pages talk to the node: `api(method, path, body)` against
// `/admin/api/*`, with the admin token from session storage as a bearer header.
// The token never goes into a URL or a cookie, so no other site's request carries it.

export const TOKEN_KEY = "aurora.admin_token";

/** An API error in OpenAI's shape: `{"error": {message, type, param, code}}`. */
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && typeof body === "object" && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.type = e.type || null;
    this.param = e.param || null;
    this.code = e.code || null;
    /** The whole body (e.g. `leader` beside `error` on 409 not_leader). */
    this.body = body;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/**
 * Calls `method path` (path relative to the origin, e.g. "/admin/api/keys") with an
 * optional JSON body; resolves to the parsed JSON (null for an empty body). Non-2xx
 * throws ApiError; a 401 also forgets the token and tells the app to show the login.
 */
export async function api(method, path, body, { tokenOverride } = {}) {
  const headers = { Accept: "application/json" };
  const t = tokenOverride ?? token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, { error: { message: `The node did not answer (${e.message}).`, code: "network" } });
  }
  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { error: { message: text.slice(0, 200) } };
    }
  }
  if (!response.ok) {
    if (response.status === 401 && tokenOverride === undefined) {
      clearToken();
      window.dispatchEvent(new CustomEvent("aurora:unauthorized"));
    }
    throw new ApiError(response.status, parsed);
  }
  return parsed;
}
