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

const PLAIN_ERRORS = {
  TIMEOUT: "The job ran longer than its time limit and was stopped.",
  CANCELLED: "The job was cancelled before it finished.",
  HRV_WITHHELD: "The video's pulse was too unclear to time heartbeats, so no risk was predicted from it.",
  WORKER_LOST: "The worker running this job stopped unexpectedly, more than once.",
  MEMORY_LIMIT: "The job needed more memory than one job may have on this server.",
  DISK_LIMIT: "The job wrote more to disk than one job may on this server.",
  NO_BEATS: "No heartbeats could be found in this recording (or only at a rate no heart beats at: is the sample rate right?).",
  DEVICE_BUSY: "The camera was in use by another program, and still was after several tries.",
  DEVICE_UNAVAILABLE: "The camera could not be reached (unplugged or switched off?), even after several tries.",
  CALIBRATION_FAILED: "The calibration could not see its checkerboard target.",
  UNAVAILABLE: "A service vitalq depends on could not be reached; try again in a moment.",
  TRANSIENT: "A temporary fault persisted through every retry.",
  INVALID_INPUT: "The input was not acceptable.",
  UNSUPPORTED_FORMAT: "The file is not in a format this job can read.",
  CORRUPT_FILE: "The file is damaged or truncated.",
  PARSE_ERROR: "The file could not be read as text in the expected layout.",
  NON_FINITE: "The signal contains missing (NaN) or infinite samples.",
  EMPTY_INPUT: "The file holds no data.",
  UNREADABLE_VIDEO: "The video could not be decoded.",
  NO_FACE: "No face was found in enough of the video.",
  TOO_SHORT: "The recording is too short for the analysis window.",
  FRAME_RATE_TOO_LOW: "The video's frame rate is too low for a pulse to be measured.",
  INTERNAL: "Something went wrong inside vitalq; the server log has the details.",
};

export function plainError(code) {
  return PLAIN_ERRORS[code] || "The job failed.";
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
