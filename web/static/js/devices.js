// The devices page: each camera, its current profile, its schedule, and "calibrate now";
// each pulse sensor, its schedule, and "record a minute".
import { api, el, when } from "./common.js";

const body = document.querySelector("#device-table tbody");
// Calibrating opens the camera's connection: admins only (the API answers 403 to others).
const isAdmin = document.getElementById("device-table").dataset.admin === "yes";
const status = document.getElementById("device-status");

// What a device's button queues: a camera's calibration (admins only: it opens the
// camera's connection and changes its settings) or a pulse sensor's minute of recording.
const ACTIONS = {
  camera: { label: "Calibrate now", what: "Calibration", adminOnly: true,
            queue: (device) => api(`/api/v1/devices/${device.id}/calibrate`, { method: "POST", json: {} }) },
  pulse_sensor: { label: "Record a minute", what: "Recording", adminOnly: false,
                  queue: (device) => api("/api/v1/jobs", { method: "POST",
                                                           json: { kind: "sensor.record", params: { device: device.id } } }) },
};

async function queue(device, action, button) {
  button.disabled = true;
  try {
    const job = await action.queue(device);
    status.replaceChildren(`${action.what} of `, device.name, " queued: ", el("a", { href: `/jobs/${job.id}` }, `job ${job.id.slice(0, 8)}`), ".");
  } catch (error) {
    status.textContent = `Could not queue: ${action.what.toLowerCase()} of ${device.name}: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

function row(device) {
  const action = ACTIONS[device.type];
  const button = el("button", { type: "button", class: "secondary" }, action.label);
  button.setAttribute("aria-label", `${action.label}: ${device.name}`);
  button.addEventListener("click", () => queue(device, action, button));
  button.hidden = action.adminOnly && !isAdmin;
  const camera = device.type === "camera";
  const profile = !camera ? "–" : device.current_profile_version === null ? "none yet" : `version ${device.current_profile_version}`;
  return el("tr", { "data-device-id": device.id },
    el("td", {}, el("strong", {}, device.name), el("br"), el("code", {}, device.id)),
    el("td", { "data-label": "Driver" }, `${device.driver} (${camera ? "camera" : "pulse sensor"})`),
    el("td", { "data-label": "Current profile" }, camera ? el("a", { href: `/api/v1/devices/${device.id}/profiles` }, profile) : profile),
    el("td", { "data-label": "Last calibration" }, !camera ? "–" : device.last_calibrated_at ? when(device.last_calibrated_at) : "never"),
    el("td", { "data-label": "Schedule" }, device.schedule ? el("code", {}, device.schedule) : "not scheduled"),
    el("td", {}, button));
}

async function refresh() {
  try {
    const { devices } = await api("/api/v1/devices");
    body.replaceChildren(...devices.map(row));
    if (!devices.length) body.append(el("tr", {}, el("td", { colspan: 6 }, "No devices registered.")));
  } catch (error) {
    status.textContent = `Could not load devices: ${error.message}`;
  }
}

refresh();
