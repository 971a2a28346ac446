// Shared by the pages: the API, how statuses and errors read, small DOM helpers.

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "INTERNAL";
    this.details = error.details || {};
  }
}

// The signed-in session's CSRF token: every request that changes something sends it.
export const CSRF_TOKEN = document.querySelector('meta[name="csrf-token"]')?.content || "";

export async function api(path, options = {}) {
  const init = { ...options, headers: { Accept: "application/json", "X-CSRF-Token": CSRF_TOKEN, ...(options.headers || {}) } };
  if (options.json !== undefined) {
    init.body = JSON.stringify(options.json);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// Status in words and a symbol as well as colour, so it reads without colour too.
const STATUS_SYMBOLS = { queued: "◷", running: "▶", retrying: "↻", succeeded: "✓", failed: "✗", cancelled: "⊘" };

export function statusBadge(status) {
  const span = el("span", { class: `status status-${status}` }, `${STATUS_SYMBOLS[status] || "•"} ${status}`);
  return span;
}

// Each error code's sentence for people, and whether the same input would fail alike:
// vitalq.errors.catalogue(), which the page that shows a failure carries.
const ERRORS = JSON.parse(document.getElementById("error-catalogue")?.textContent || "{}");

export function plainError(code) {
  return ERRORS[code]?.plain || "The job failed.";
}

/** Whether running the job again, as it is, could end otherwise. */
export function mightEndOtherwise(code) {
  return !ERRORS[code]?.deterministic;
}

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function percent(fraction) {
  return `${Math.round((fraction || 0) * 100)} %`;
}
