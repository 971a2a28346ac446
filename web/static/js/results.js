// How each job kind's result is drawn on its job page. Charts are uPlot (vendored under
// static/vendor, served by vitalq): drag across a chart to zoom, double-click to reset.
import { el } from "./common.js";

function chart(container, title, xLabel, series, data, options = {}) {
  const box = el("figure", { class: "chart", role: "group", "aria-label": title }, el("h3", {}, title));
  container.append(box);
  const width = Math.max(280, Math.min(container.clientWidth || 800, 960));
  const plot = new uPlot({
    width, height: options.height || 260,
    scales: { x: { time: false, distr: options.logX ? 3 : 1 }, ...(options.scales || {}) },
    axes: [{ label: xLabel }, ...(options.axes || [{ label: options.yLabel || "" }])],
    series: [{ label: xLabel }, ...series],
    cursor: { drag: { x: true, y: false } },
  }, data, box);
  box.append(el("figcaption", { class: "help" }, "Drag to zoom; double-click to reset."));
  return plot;
}

function table(container, caption, rows) {
  const body = rows.map(([name, value]) => el("tr", {}, el("th", { scope: "row" }, name), el("td", {}, value)));
  container.append(el("table", { class: "kv" }, el("caption", {}, caption), el("tbody", {}, body)));
}

function fixed(value, digits = 2, unit = "") {
  return value === null || value === undefined || Number.isNaN(value) ? "—" : `${Number(value).toFixed(digits)}${unit}`;
}

async function csv(job, name) {
  const text = await (await fetch(`/api/v1/jobs/${job.id}/artifacts/${name}`)).text();
  const [header, ...lines] = text.trim().split(/\r?\n/);  // Python's csv ends its lines with \r\n
  const columns = header.split(",").map(() => []);
  // An empty cell or "nan" is a gap in the chart, not a zero; a word stays a word.
  for (const line of lines) {
    line.split(",").forEach((cell, i) => {
      const value = Number(cell);
      columns[i].push(cell === "nan" || cell === "" ? null : Number.isNaN(value) ? cell : value);
    });
  }
  return columns;
}

// AUTO reads a video by one of two methods, or by both where they agree ("GREEN+POS"):
// which, in how many of the windows.
function method(summary) {
  if (summary.method !== "AUTO") return summary.method;
  const counts = {};
  for (const window of summary.per_window || []) if (window.bpm !== null) counts[window.method] = (counts[window.method] || 0) + 1;
  const used = Object.entries(counts).map(([name, count]) => `${name} in ${count}`).join(", ");
  return used ? `AUTO (${used} of the windows used)` : "AUTO";
}

async function rppg(job, container, summary = job.result) {
  // An unreliable heart rate is never shown as a plain number.
  const overall = summary.reliable === false
    ? `unreliable: ${summary.unreliable_reason}${summary.best_guess_bpm === null ? "" : ` (best guess ${fixed(summary.best_guess_bpm, 0)} bpm, not to be used)`}`
    : fixed(summary.heart_rate_bpm, 1, " bpm");
  table(container, "Heart rate", [
    ["Overall", overall], ["Method", method(summary)],
    ["Signal quality", fixed(summary.quality, 2)],
    ["Windows used", `${summary.windows.accepted} of ${summary.windows.total}`],
    ["Duration", fixed(summary.duration_s, 1, " s")], ["Face found in", fixed(100 * (summary.face_fraction ?? 1), 0, " % of frames")],
  ]);
  const [t, pulse] = await csv(job, "pulse.csv");
  chart(container, "Pulse signal (blood-volume pulse)", "time (s)", [{ label: "pulse", stroke: "#0b5cad" }], [t, pulse]);
  const [ht, bpm, quality] = await csv(job, "heart_rate.csv");
  // Quality (0 to 1) on its own axis, at the right: it is not a heart rate.
  chart(container, "Heart rate over time", "time (s)",
    [{ label: "heart rate (bpm)", stroke: "#a40e26", points: { show: true }, scale: "bpm" },
     { label: "quality (0–1)", stroke: "#57606a", dash: [4, 4], scale: "quality" }],
    [ht, bpm, quality], {
      scales: { quality: { range: [0, 1] } },
      axes: [{ label: "heart rate (bpm)", scale: "bpm" }, { label: "quality", scale: "quality", side: 1, grid: { show: false } }],
    });
  const hrv = summary.hrv || {};
  if (hrv.withheld) {
    container.append(el("p", { class: "help", id: "hrv-withheld" }, `Heart-rate variability withheld: ${hrv.withheld}.`));
    return;
  }
  table(container, "Heart-rate variability", [
    ["Beats used", hrv.beats ?? "—"], ["Mean HR", fixed(hrv.mean_hr_bpm, 1, " bpm")], ["SDNN", fixed(hrv.sdnn_ms, 1, " ms")],
    ["RMSSD", fixed(hrv.rmssd_ms, 1, " ms")], ["pNN50", fixed(hrv.pnn50_pct, 1, " %")], ["LF", fixed(hrv.lf_ms2, 1, " ms²")],
    ["HF", fixed(hrv.hf_ms2, 1, " ms²")], ["LF/HF", fixed(hrv.lf_hf, 2)],
  ]);
}

async function filtered(job, container) {
  const result = job.result;
  table(container, "Filter", [["Sample rate", fixed(result.fs_hz, 3, " Hz")], ["Samples", result.samples.toLocaleString()],
    ["Duration", fixed(result.duration_s, 1, " s")], ["Zero phase", result.zero_phase ? "yes" : "no"],
    ["Sections", result.sections]]);
  const preview = await (await fetch(`/api/v1/jobs/${job.id}/artifacts/preview.json`)).json();
  for (const channel of preview.channels) {
    chart(container, `Channel ${channel.name}: before and after (min/max per bin)`, "time (s)", [
      { label: "before max", stroke: "#8c959f" }, { label: "before min", stroke: "#8c959f" },
      { label: "after max", stroke: "#0b5cad" }, { label: "after min", stroke: "#0b5cad" },
    ], [preview.bin_start_s, channel.before.max, channel.before.min, channel.after.max, channel.after.min]);
  }
}

async function calibration(job, container) {
  const result = job.result;
  const verdict = result.passed ? "✓ passed" : `✗ failed: ${result.reasons.join("; ")}`;
  table(container, "Verdict", [["Profile", `version ${result.profile_version}${result.current ? " (current)" : ""}`],
    ["Verdict", verdict], ["Exposure", fixed(result.settings.exposure, 2, " ms")], ["Gain", fixed(result.settings.gain, 2, "x")],
    ["Focus", fixed(result.settings.focus, 0, " steps")]]);
  const sweeps = result.sweeps || {};
  if (sweeps.exposure) {
    chart(container, "Exposure sweep: contrast-to-noise (0 where it saturates)", "exposure (ms)",
      [{ label: "score", stroke: "#0b5cad", points: { show: true } }],
      [sweeps.exposure.map((p) => p.value), sweeps.exposure.map((p) => p.score)], { logX: true });
  }
  if (sweeps.focus) {
    chart(container, "Focus sweep: sharpness", "focus (steps)", [{ label: "sharpness", stroke: "#a40e26", points: { show: true } }],
      [sweeps.focus.map((p) => p.value), sweeps.focus.map((p) => p.score)]);
  }
  const intrinsics = result.intrinsics;
  if (intrinsics) {
    const m = intrinsics.camera_matrix, std = intrinsics.std_intrinsics || {};
    table(container, "Intrinsics", [
      ["fx", `${fixed(m[0][0], 2)} ± ${fixed(std.fx, 2)} px`], ["fy", `${fixed(m[1][1], 2)} ± ${fixed(std.fy, 2)} px`],
      ["cx", `${fixed(m[0][2], 2)} ± ${fixed(std.cx, 2)} px`], ["cy", `${fixed(m[1][2], 2)} ± ${fixed(std.cy, 2)} px`],
      ["Distortion (k1 k2 p1 p2 k3)", intrinsics.dist_coeffs.map((d) => d.toFixed(4)).join("  ")],
      ["Reprojection error (RMS)", fixed(intrinsics.reprojection_error_px, 3, " px")],
      ["Views", intrinsics.views], ["Frame coverage", fixed(100 * intrinsics.coverage, 0, " %")],
    ]);
  }
}

function risk(job, container, prediction = job.result) {
  const model = prediction.model;
  table(container, "Model", [["Version", model.version], ["Name", model.name], ["Type", model.type], ["Runtime", model.runtime],
    ...(model.demo ? [["Note", model.notice || "demonstration model, not clinically validated"]] : [])]);
  if (!prediction.predictions) {  // more than a job's record holds: the whole result is an artifact
    container.append(el("p", {}, "The predictions are too many to show here: ",
      el("a", { href: `/api/v1/jobs/${job.id}/artifacts/${prediction.result_artifact}` }, prediction.result_artifact),
      ` (${prediction.result_bytes.toLocaleString()} bytes) holds them all.`));
    return;
  }
  const rows = prediction.predictions.slice(0, 200).map((p, i) => el("tr", {}, el("td", {}, i + 1),
    ...prediction.classes.map((c) => el("td", {}, fixed(p.probabilities[String(c)], 3))), el("td", {}, String(p.predicted))));
  container.append(el("table", {}, el("caption", {}, `Probabilities (${prediction.predictions.length} row${prediction.predictions.length === 1 ? "" : "s"}${prediction.predictions.length > 200 ? ", first 200 shown" : ""})`),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "row"), ...prediction.classes.map((c) => el("th", { scope: "col" }, `P(${c})`)),
      el("th", { scope: "col" }, "predicted"))), el("tbody", {}, rows)));
}

function trained(job, container) {
  const model = job.result.model, metrics = model.metrics;
  const score = (name) => metrics[`cv_${name}`] ? `${fixed(metrics[`cv_${name}`].mean, 3)} ± ${fixed(metrics[`cv_${name}`].std, 3)}` : "—";
  table(container, "Model", [["Version", `${model.version}${model.active ? " (active)" : ""}`], ["Name", model.name],
    ["Type", model.model_type], ["Runtime", model.runtime], ["Classes", Object.entries(model.class_balance).map(([c, n]) => `${c}: ${n} rows`).join(", ")],
    ["Features", model.features.length]]);
  table(container, `Performance (${metrics.cv_folds}-fold cross-validation; held-out rows: ${metrics.holdout_rows})`, [
    ["ROC AUC", `${score("roc_auc")} (held out: ${fixed(metrics.holdout_roc_auc, 3)})`],
    ["Balanced accuracy", `${score("balanced_accuracy")} (held out: ${fixed(metrics.holdout_balanced_accuracy, 3)})`],
    ...(metrics.cv_brier ? [["Brier score (lower is better)", `${score("brier")} (held out: ${fixed(metrics.holdout_brier, 3)})`]] : []),
  ]);
}

async function heartbeats(job, container, result = job.result) {
  const hrv = result.hrv;
  table(container, `Heartbeats (${result.signal_type.toUpperCase()}, channel ${result.channel})`, [
    ["Heart rate", result.heart_rate_bpm === null
      ? "not given: too little of the recording was clean enough to count" : fixed(result.heart_rate_bpm, 1, " bpm")],
    ["Confidence (share of the recording usable)", fixed(100 * result.confidence, 0, " %")],
    ["Beats", `${result.beats.toLocaleString()} found, ${result.usable_beats.toLocaleString()} counted`],
    ["Windows usable", `${result.usable_windows} of ${result.windows} (10 s each)`],
    ["Duration", fixed(result.duration_s / 3600, 2, " h")],
  ]);
  table(container, hrv.withheld ? `HRV withheld: ${hrv.withheld}` : `HRV over ${fixed(hrv.span_s / 60, 1)} min of clean beats`, [
    ["SDNN", fixed(hrv.sdnn_ms, 1, " ms")], ["RMSSD", fixed(hrv.rmssd_ms, 1, " ms")], ["pNN50", fixed(hrv.pnn50_pct, 1, " %")],
    ["LF / HF", `${fixed(hrv.lf_ms2, 0, " ms²")} / ${fixed(hrv.hf_ms2, 0, " ms²")} (${fixed(hrv.lf_hf, 2)})`],
    ["Poincaré SD1 / SD2", `${fixed(hrv.sd1_ms, 1, " ms")} / ${fixed(hrv.sd2_ms, 1, " ms")}`],
  ]);
  const [start, bpm, quality] = await csv(job, "heart_rate.csv");
  chart(container, "Heart rate over the recording (gaps: unusable windows)", "time (s)",
    [{ label: "heart rate (bpm)", stroke: "#a40e26", scale: "bpm" }, { label: "quality (0–1)", stroke: "#555", scale: "q", dash: [4, 4] }],
    [start, bpm, quality], {
      scales: { q: { range: [0, 1] } },
      axes: [{ label: "time (s)" }, { label: "heart rate (bpm)", scale: "bpm" }, { label: "quality", scale: "q", side: 1, grid: { show: false } }],
    });
  if (result.cleaned_signal) await signalAround(job, container, result);
}

function recording(job, container, made = job.result.recording) {
  table(container, "Recording", [["Device", made.device], ["Driver", made.driver], ["Length", fixed(made.seconds, 0, " s")],
    ["Sample rate", `${fixed(made.fs, 0, " Hz")} (${fixed(made.measured_rate_hz, 1, " Hz")} measured)`],
    ["Samples", made.samples.toLocaleString()]]);
}

// The cleaned signal around a chosen time, its beats marked: the stretch is read from
// the float32 artifact by its byte range, so a day-long recording is never fetched whole.
const AROUND_S = 10;

async function signalAround(job, container, result) {
  const fs = result.fs_hz;
  const [times, , , , labels] = await csv(job, "beats.csv");
  const box = el("section", { class: "signal-view" }, el("h3", {}, "The signal around a time"));
  const input = el("input", { id: "signal-at", type: "number", min: 0, step: "any", max: Math.max(0, result.duration_s - AROUND_S),
                              value: Math.max(0, Math.min(times[0] ?? 0, result.duration_s - AROUND_S)).toFixed(1) });
  const show = el("button", { type: "button", class: "secondary" }, "Show");
  const status = el("p", { class: "help", "aria-live": "polite" });
  const figure = el("div", { class: "signal-chart" });
  box.append(el("p", {}, el("label", { for: "signal-at" }, `${AROUND_S} s from (s): `), input, " ", show), status, figure);
  container.append(box);

  async function draw() {
    const from = Math.max(0, Math.min(Number(input.value) || 0, result.duration_s));
    const first = Math.floor(from * fs), last = Math.min(Math.ceil((from + AROUND_S) * fs), Math.round(result.duration_s * fs));
    const response = await fetch(`/api/v1/jobs/${job.id}/artifacts/${result.cleaned_signal}`,
                                 { headers: { Range: `bytes=${first * 4}-${last * 4 - 1}` } });
    const offset = response.status === 206 ? 0 : first * 4;  // a server that ignored the range sent it all
    const samples = new Float32Array((await response.arrayBuffer()).slice(offset, offset + (last - first) * 4));
    const t = Array.from(samples, (_, k) => (first + k) / fs);
    // Beats as points on the signal, each at its own sample: clean ones red, unusable grey.
    const clean = new Array(t.length).fill(null), unusable = new Array(t.length).fill(null);
    let shown = 0, shownClean = 0;
    times.forEach((time, i) => {
      const k = Math.round(time * fs) - first;
      if (k < 0 || k >= t.length) return;
      (labels[i] === "ok" ? clean : unusable)[k] = samples[k];
      shown += 1;
      shownClean += labels[i] === "ok" ? 1 : 0;
    });
    figure.replaceChildren();
    const points = (stroke) => ({ stroke, paths: () => null, points: { show: true, size: 8, fill: stroke } });
    chart(figure, `Cleaned ${result.signal_type.toUpperCase()}, ${fixed(from, 1)} to ${fixed(from + t.length / fs, 1)} s`,
      "time (s)", [{ label: "signal", stroke: "#0b5cad" }, { label: "beat", ...points("#a40e26") },
                   { label: "beat in an unusable window", ...points("#888") }], [t, Array.from(samples), clean, unusable]);
    box.dataset.from = String(from);
    box.dataset.beats = String(shown);
    box.dataset.cleanBeats = String(shownClean);
    box.dataset.samples = String(t.length);
    status.textContent = `${shown} beat${shown === 1 ? "" : "s"} in this stretch, ${shownClean} of them in usable windows.`;
  }
  show.addEventListener("click", draw);
  input.addEventListener("keydown", (event) => { if (event.key === "Enter") draw(); });
  await draw();
}

function plain(job, container) {
  container.append(el("pre", {}, JSON.stringify(job.result, null, 2)));
}

export const RESULT_VIEWS = {
  "video.rppg": rppg,
  "video.analyze": async (job, container) => {
    await rppg(job, container, job.result.rppg);
    if (job.result.risk) risk(job, container, job.result.risk);
  },
  "signal.filter": filtered,
  "signal.beats": heartbeats,
  "signal.analyze": async (job, container) => {
    await heartbeats(job, container, job.result.beats);
    if (job.result.risk) risk(job, container, job.result.risk);
  },
  "sensor.record": async (job, container) => {
    recording(job, container);
    if (job.result.beats) await heartbeats(job, container, job.result.beats);
  },
  "camera.calibrate": calibration,
  "risk.predict": risk,
  "risk.train": trained,
  default: plain,
};
