// The devices page: each camera, its current profile, its schedule, and "calibrate now".
import { api, el, when } from "./common.js";

const body = document.querySelector("#device-table tbody");
// Calibrating opens the camera's connection: admins only (the API answers 403 to others).
const isAdmin = document.getElementById("device-table").dataset.admin === "yes";
const status = document.getElementById("device-status");

async function calibrate(device, button) {
  button.disabled = true;
  try {
    const job = await api(`/api/v1/devices/${device.id}/calibrate`, { method: "POST", json: {} });
    status.replaceChildren("Calibration of ", device.name, " queued: ", el("a", { href: `/jobs/${job.id}` }, `job ${job.id.slice(0, 8)}`), ".");
  } catch (error) {
    status.textContent = `Could not queue a calibration of ${device.name}: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

function row(device) {
  const button = el("button", { type: "button", class: "secondary" }, "Calibrate now");
  button.setAttribute("aria-label", `Calibrate ${device.name} now`);
  button.addEventListener("click", () => calibrate(device, button));
  button.hidden = !isAdmin;
  const profile = device.current_profile_version === null ? "none yet" : `version ${device.current_profile_version}`;
  return el("tr", { "data-device-id": device.id },
    el("td", {}, el("strong", {}, device.name), el("br"), el("code", {}, device.id)),
    el("td", { "data-label": "Driver" }, device.driver),
    el("td", { "data-label": "Current profile" }, el("a", { href: `/api/v1/devices/${device.id}/profiles` }, profile)),
    el("td", { "data-label": "Last calibration" }, device.last_calibrated_at ? when(device.last_calibrated_at) : "never"),
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
