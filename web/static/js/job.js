// One job: live progress over the websocket (reconnecting with ?after=seq, so no event
// is lost), cancel and run-again buttons, the error in plain words, and the results drawn.
import { api, el, mightEndOtherwise, percent, plainError, statusBadge } from "./common.js";
import { RESULT_VIEWS } from "./results.js";

const root = document.getElementById("job");
const jobId = root.dataset.jobId;
const $ = (id) => document.getElementById(id);
let lastSeq = -1;
let finished = false;
let retryDelay = 500;

function showProgress(fraction, stage, message) {
  $("progress").value = fraction || 0;
  $("percent").textContent = percent(fraction);
  $("stage").textContent = stage ? `· ${stage}` : "";
  $("message").textContent = message ? `· ${message}` : "";
}

function showStatus(status) {
  $("status").replaceChildren(statusBadge(status));
  root.dataset.status = status;
  const live = ["queued", "running", "retrying"].includes(status);
  $("cancel").hidden = !live;
  $("retry").hidden = live;
  $("delete").hidden = live;
}

function showJob(job) {
  $("job-title").textContent = job.kind;
  document.title = `${job.kind} ${job.status} · vitalq`;
  showStatus(job.status);
  showProgress(job.progress.fraction, job.progress.stage, job.progress.message);
  $("record").textContent = JSON.stringify(job, null, 2);
  // The first snapshot says where the stream starts; after a reconnect, ?after=lastSeq does.
  if (lastSeq < 0) root.dataset.firstSeq = lastSeq = job.progress.seq;
}

async function showFinal(job) {
  finished = true;
  showJob(job);
  if (job.status === "succeeded") showProgress(1, job.progress.stage, "done");
  // A job of several stages keeps what its earlier stages finished when a later one fails.
  const finishedParts = job.error?.details?.finished_parts || [];
  if (job.error) {
    $("failure").hidden = false;
    $("failure-title").textContent = job.status === "cancelled" ? "Why it stopped"
      : finishedParts.length ? `What could not be done (the ${finishedParts.join(", ")} part finished: below)`
      : "Why it failed";
    $("failure-plain").textContent = plainError(job.error.code);
    // The same input would fail the same way: no "Run again" (submit it anew, changed).
    if (!mightEndOtherwise(job.error.code)) $("retry").hidden = true;
    $("failure-code").textContent = job.error.code;
    $("failure-message").textContent = job.error.message;
  }
  if (job.artifacts.length) {
    $("artifacts-section").hidden = false;
    $("artifacts").replaceChildren(...job.artifacts.map((artifact) => el("li", {},
      el("a", { href: `/api/v1/jobs/${job.id}/artifacts/${encodeURIComponent(artifact.name)}?download=1`, download: artifact.name },
        artifact.name), ` (${(artifact.size / 1024).toFixed(1)} kB)`)));
  }
  if (job.result && (job.status === "succeeded" || finishedParts.length)) {
    $("results").hidden = false;
    const view = RESULT_VIEWS[job.kind] || RESULT_VIEWS.default;
    try {
      await view(job, $("result-views"));
    } catch (error) {
      $("result-views").append(el("p", { class: "error" }, `The results could not be drawn: ${error.message}`));
    }
    root.dataset.rendered = "true";
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const after = lastSeq >= 0 ? `?after=${lastSeq}` : "";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/jobs/${jobId}${after}`);
  window.vitalqSocket = socket; // for the console and the tests, which drop it on purpose
  socket.onopen = () => { $("connection").textContent = "live"; retryDelay = 500; };
  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type === "snapshot") showJob(event.job);
    else if (event.type === "final") showFinal(event.job);
    else if (event.type === "progress" || event.type === "status") {
      if (event.seq !== undefined) {
        if (event.seq <= lastSeq) return; // already seen before a reconnect
        lastSeq = event.seq;
        root.dataset.events = Number(root.dataset.events || 0) + 1;
        root.dataset.lastSeq = lastSeq;
      }
      showStatus(event.status);
      showProgress(event.fraction, event.stage, event.message);
    }
  };
  socket.onclose = () => {
    if (finished) { $("connection").textContent = ""; return; }
    $("connection").textContent = "connection lost; reconnecting…";
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 10000);
  };
}

$("cancel").addEventListener("click", async () => {
  $("cancel").disabled = true;
  try {
    const job = await api(`/api/v1/jobs/${jobId}/cancel`, { method: "POST", json: {} });
    $("connection").textContent = job.finished_at ? "" : "asked to stop…";
  } catch (error) {
    $("connection").textContent = `Could not cancel: ${error.message}`;
  } finally {
    $("cancel").disabled = false;
  }
});

$("delete").addEventListener("click", async () => {
  if (!window.confirm("Delete this job, its results and its files? This cannot be undone.")) return;
  try {
    await api(`/api/v1/jobs/${jobId}`, { method: "DELETE" });
    location.assign("/jobs");
  } catch (error) {
    $("connection").textContent = `Could not delete: ${error.message}`;
  }
});

$("retry").addEventListener("click", async () => {
  try {
    const job = await api(`/api/v1/jobs/${jobId}/retry`, { method: "POST", json: {} });
    location.assign(`/jobs/${job.id}`);
  } catch (error) {
    $("connection").textContent = `Could not run it again: ${error.message}`;
  }
});

connect();
