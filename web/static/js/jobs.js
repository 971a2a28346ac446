// The job list: filtered by kind and status, paged, refreshed every two seconds.
import { api, el, percent, statusBadge, when } from "./common.js";

const PAGE = 20;
const body = document.querySelector("#job-table tbody");
const kindFilter = document.getElementById("filter-kind");
const statusFilter = document.getElementById("filter-status");
const query = new URLSearchParams(location.search);
let offset = Number(query.get("offset") || 0);

function row(job) {
  const progress = el("progress", { max: 1, value: job.progress.fraction, "aria-label": `progress ${percent(job.progress.fraction)}` });
  return el("tr", { "data-job-id": job.id },
    el("td", { "data-label": "Job" }, el("a", { href: `/jobs/${job.id}` }, job.id.slice(0, 8))),
    el("td", { "data-label": "Kind" }, job.kind),
    el("td", { "data-label": "File" }, job.input?.filename || "—"),
    el("td", { "data-label": "Owner" }, job.owner || "—"),
    el("td", { "data-label": "Status" }, statusBadge(job.status)),
    el("td", { "data-label": "Error" }, job.error ? el("code", { title: job.error.message }, job.error.code) : "—"),
    el("td", { "data-label": "Priority" }, job.priority),
    el("td", { "data-label": "Progress" }, progress, " ", percent(job.progress.fraction)),
    el("td", { "data-label": "Submitted" }, when(job.created_at)),
    el("td", { "data-label": "Finished" }, when(job.finished_at) || "—"));
}

async function refresh() {
  const params = new URLSearchParams({ limit: PAGE, offset });
  if (kindFilter.value) params.set("kind", kindFilter.value);
  if (statusFilter.value) params.set("status", statusFilter.value);
  try {
    const page = await api(`/api/v1/jobs?${params}`);
    body.replaceChildren(...page.jobs.map(row));
    if (!page.jobs.length) body.append(el("tr", {}, el("td", { colspan: 10 }, "No jobs match.")));
    document.getElementById("page-info").textContent =
      page.total ? `${offset + 1}–${Math.min(offset + PAGE, page.total)} of ${page.total}` : "";
    document.getElementById("prev").disabled = offset === 0;
    document.getElementById("next").disabled = page.next === null;
    document.getElementById("job-table").dataset.loaded = "true";
  } catch (error) {
    document.getElementById("page-info").textContent = `Could not load jobs: ${error.message}`;
  }
}

function filtersChanged() {
  offset = 0;
  const params = new URLSearchParams();
  if (kindFilter.value) params.set("kind", kindFilter.value);
  if (statusFilter.value) params.set("status", statusFilter.value);
  history.replaceState(null, "", params.toString() ? `?${params}` : location.pathname);
  refresh();
}

kindFilter.addEventListener("change", filtersChanged);
statusFilter.addEventListener("change", filtersChanged);
document.getElementById("prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); refresh(); });
document.getElementById("next").addEventListener("click", () => { offset += PAGE; refresh(); });

(async () => {
  for (const kind of (await api("/api/v1/kinds")).kinds) kindFilter.append(el("option", { value: kind.name }, kind.name));
  kindFilter.value = query.get("kind") || "";
  statusFilter.value = query.get("status") || "";
  await refresh();
  setInterval(refresh, 2000);
})();
