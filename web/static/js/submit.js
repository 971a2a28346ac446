// The submit page: a form for each job kind, built from the kind's params schema (the
// same schema the API validates against), sent as multipart with upload progress.
import { CSRF_TOKEN, api, el } from "./common.js";

const form = document.getElementById("submit-form");
const kindSelect = document.getElementById("kind");
const paramsBox = document.getElementById("params");
const fileField = document.getElementById("file-field");
const fileInput = document.getElementById("file");
const dropzone = document.getElementById("dropzone");
let kinds = [];
let devices = [];
// The page opens on the kind most people come for.
const DEFAULT_KIND = "video.rppg";

function schemaType(spec) {
  const types = Array.isArray(spec.type) ? spec.type.filter((t) => t !== "null") : [spec.type];
  if (spec.enum) return "enum";
  return types[0] || "string";
}

// Each bound as it is: an excluded one is said so ("Range: 0 to ..." read as if 0 were allowed).
function bounds(spec) {
  if (spec.minimum !== undefined && spec.maximum !== undefined) return `Range: ${spec.minimum} to ${spec.maximum}.`;
  const said = [];
  if (spec.minimum !== undefined) said.push(`at least ${spec.minimum}`);
  if (spec.exclusiveMinimum !== undefined) said.push(`above ${spec.exclusiveMinimum}`);
  if (spec.maximum !== undefined) said.push(`at most ${spec.maximum}`);
  if (spec.exclusiveMaximum !== undefined) said.push(`below ${spec.exclusiveMaximum}`);
  if (!said.length) return null;
  const text = said.join(", ");
  return `${text[0].toUpperCase()}${text.slice(1)}.`;
}

function describe(name, spec) {
  const parts = [];
  if (spec.description) parts.push(spec.description);
  if (spec.default !== undefined && spec.default !== null) parts.push(`Default: ${JSON.stringify(spec.default)}.`);
  const range = bounds(spec);
  if (range) parts.push(range);
  if (schemaType(spec) === "array") parts.push("Separate values with commas.");
  if (schemaType(spec) === "object") parts.push("A JSON object.");
  return parts.join(" ");
}

function inputFor(name, spec, required) {
  const id = `param-${name}`;
  const common = { id, name, "data-param": name, "aria-describedby": `${id}-help ${id}-error`, required };
  const type = schemaType(spec);
  if (name === "device") { // a registered device of the type the kind runs on, by its id
    const select = el("select", common);
    const fitting = devices.filter((device) => !spec["x-device-type"] || device.type === spec["x-device-type"]);
    for (const device of fitting) select.append(el("option", { value: JSON.stringify(device.id) }, `${device.id} (${device.driver})`));
    if (!fitting.length) select.append(el("option", { value: "" }, "(no such device registered: see Devices)"));
    return select;
  }
  if (type === "enum") {
    const select = el("select", common);
    if (!required && spec.default === undefined) select.append(el("option", { value: "" }, "(not set)"));
    for (const value of spec.enum) {
      select.append(el("option", { value: JSON.stringify(value), selected: value === spec.default }, value === null ? "none" : String(value)));
    }
    return select;
  }
  if (type === "boolean") return el("input", { ...common, type: "checkbox", checked: spec.default === true });
  if (type === "number" || type === "integer") {
    return el("input", { ...common, type: "number", inputmode: "decimal", step: type === "integer" ? 1 : "any",
                         placeholder: spec.default ?? "" });
  }
  if (type === "object" || (type === "array" && spec.items && spec.items.type === "object")) {
    return el("textarea", { ...common, placeholder: spec.default !== undefined ? JSON.stringify(spec.default) : "{}" });
  }
  return el("input", { ...common, type: "text", placeholder: Array.isArray(spec.default) ? spec.default.join(", ") : spec.default ?? "" });
}

function renderParams(kind) {
  paramsBox.replaceChildren(el("legend", {}, "Parameters"));
  const schema = kind.params_schema;
  const required = new Set(schema.required || []);
  // The params most users set first, in the kind's order; the rest folded under "More".
  const main = kind.main_params || [];
  const names = Object.keys(schema.properties || {});
  const more = main.length ? el("details", { class: "more-params" }, el("summary", {}, "More parameters")) : null;
  for (const name of [...main, ...names.filter((n) => !main.includes(n))]) {
    const spec = schema.properties[name];
    const id = `param-${name}`;
    const input = inputFor(name, spec, required.has(name));
    const label = el("label", { for: id }, name.replaceAll("_", " "), required.has(name) ? " (required)" : "");
    const field = schemaType(spec) === "boolean"
      ? el("div", { class: "field" }, input, " ", label)
      : el("div", { class: "field" }, label, input);
    field.append(el("p", { id: `${id}-help`, class: "help" }, describe(name, spec)),
                 el("p", { id: `${id}-error`, class: "error", role: "alert", hidden: true }));
    (more && !main.includes(name) && !required.has(name) ? more : paramsBox).append(field);
  }
  if (more && more.children.length > 1) paramsBox.append(more);
  if (!Object.keys(schema.properties || {}).length) paramsBox.append(el("p", { class: "help" }, "This job kind takes no parameters."));
  document.getElementById("kind-help").textContent = kind.description;
  fileField.hidden = !kind.upload;
  if (kind.upload) {
    document.getElementById("file-formats").textContent =
      `(${kind.upload.required ? "required" : "optional"}${kind.upload.formats.length ? "; " + kind.upload.formats.join(", ") : ""})`;
  }
}

function collectParams(kind) {
  const params = {};
  for (const [name, spec] of Object.entries(kind.params_schema.properties || {})) {
    const input = document.getElementById(`param-${name}`);
    const type = schemaType(spec);
    if (type === "boolean") { params[name] = input.checked; continue; }
    const raw = input.value.trim();
    if (raw === "") continue; // the default applies
    if (type === "enum" || name === "device") params[name] = JSON.parse(raw);
    else if (type === "number" || type === "integer") params[name] = Number(raw);
    else if (type === "array" && !(spec.items && spec.items.type === "object")) {
      // Items that may be numbers (cutoffs, channel indexes) are numbers when they read as one.
      const numeric = [].concat(spec.items?.type || "string").some((t) => t === "number" || t === "integer");
      params[name] = raw.split(",").map((part) => part.trim()).filter(Boolean)
        .map((part) => (numeric && !Number.isNaN(Number(part)) ? Number(part) : part));
    } else if (type === "object" || type === "array") {
      try { params[name] = JSON.parse(raw); } catch { params[name] = raw; } // the server names the field
    } else {
      // A name or an index (a channel): digits alone are the index, as on the command line.
      const integerToo = [].concat(spec.type || []).includes("integer");
      params[name] = integerToo && /^\d+$/.test(raw) ? Number(raw) : raw;
    }
  }
  return params;
}

function clearErrors() {
  for (const node of form.querySelectorAll(".error")) { node.hidden = true; node.textContent = ""; }
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}

function showErrors(error) {
  const fields = (error.details && error.details.fields) || {};
  let shown = false;
  for (const [path, message] of Object.entries(fields)) {
    const name = path.split(".")[0];
    const target = name === "file" ? "file" : name === "priority" ? "priority" : `param-${name}`;
    const box = document.getElementById(`${target}-error`);
    const input = document.getElementById(target);
    if (!box) continue;
    box.textContent = `${message}`;
    box.hidden = false;
    if (input) input.setAttribute("aria-invalid", "true");
    const folded = input?.closest("details");
    if (folded) folded.open = true; // an error under "More parameters" is shown, not hidden
    if (!shown && input) input.focus();
    shown = true;
  }
  const formError = document.getElementById("form-error");
  formError.textContent = `${error.message} (${error.code})`;
  formError.hidden = false;
}

function send(formData) {
  // XMLHttpRequest, not fetch: it reports upload progress.
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", "/api/v1/jobs");
    request.setRequestHeader("Accept", "application/json");
    request.setRequestHeader("X-CSRF-Token", CSRF_TOKEN);
    request.upload.onprogress = (event) => {
      if (!event.lengthComputable) return;
      bar.hidden = false;
      bar.value = event.loaded / event.total;
      status.textContent = `Uploading… ${Math.round((100 * event.loaded) / event.total)} %`;
    };
    request.onload = () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch { /* not JSON */ }
      if (request.status === 201) resolve(body);
      else reject({ status: request.status, code: body?.error?.code || "INTERNAL", message: body?.error?.message || `HTTP ${request.status}`, details: body?.error?.details || {} });
    };
    request.onerror = () => reject({ code: "UNAVAILABLE", message: "The server could not be reached.", details: {} });
    request.send(formData);
  });
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  const kind = kinds.find((k) => k.name === kindSelect.value);
  const data = new FormData();
  data.append("kind", kind.name);
  data.append("priority", document.getElementById("priority").value);
  data.append("params", JSON.stringify(collectParams(kind)));
  if (kind.upload && fileInput.files.length) data.append("file", fileInput.files[0]);
  const button = document.getElementById("submit");
  button.disabled = true;
  try {
    const job = await send(data);
    document.getElementById("upload-status").textContent = "Submitted.";
    window.location.assign(`/jobs/${job.id}`);
  } catch (error) {
    showErrors(error);
    document.getElementById("upload-status").textContent = "";
    document.getElementById("upload-progress").hidden = true;
  } finally {
    button.disabled = false;
  }
});

function chosen() {
  document.getElementById("file-chosen").textContent = fileInput.files.length
    ? `${fileInput.files[0].name} (${(fileInput.files[0].size / 1e6).toFixed(2)} MB)` : "";
}
fileInput.addEventListener("change", chosen);
for (const type of ["dragenter", "dragover"]) {
  dropzone.addEventListener(type, (event) => { event.preventDefault(); dropzone.classList.add("over"); });
}
for (const type of ["dragleave", "drop"]) dropzone.addEventListener(type, () => dropzone.classList.remove("over"));
dropzone.addEventListener("drop", (event) => {
  event.preventDefault();
  if (event.dataTransfer.files.length) { fileInput.files = event.dataTransfer.files; chosen(); }
});

kindSelect.addEventListener("change", () => {
  renderParams(kinds.find((k) => k.name === kindSelect.value));
  history.replaceState(null, "", `?kind=${encodeURIComponent(kindSelect.value)}`);
});

(async () => {
  [kinds, devices] = await Promise.all([api("/api/v1/kinds").then((body) => body.kinds),
                                        api("/api/v1/devices").then((body) => body.devices)]);
  for (const kind of kinds) kindSelect.append(el("option", { value: kind.name }, `${kind.title} (${kind.name})`));
  const wanted = new URLSearchParams(location.search).get("kind");
  const opening = [wanted, DEFAULT_KIND].find((name) => kinds.some((k) => k.name === name));
  if (opening) kindSelect.value = opening;
  renderParams(kinds.find((k) => k.name === kindSelect.value));
  form.dataset.ready = "true";
})();
