// Live updates for the console: polls the JSON endpoints and updates counts and
// a job's progress in place. The pages work without it; no framework.
"use strict";
(function () {
  const EVERY_MS = 1000;

  function poll(url, apply) {
    let stopped = false;
    async function tick() {
      if (stopped) { return; }
      try {
        const response = await fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}});
        if (response.ok && apply(await response.json()) === false) { stopped = true; return; }
      } catch (err) {
        // Offline or Redis away: try again at the next tick.
      }
      setTimeout(tick, EVERY_MS);
    }
    setTimeout(tick, EVERY_MS);
  }

  function overview(box) {
    poll(box.dataset.liveOverview, function (data) {
      for (const queue of data.queues) {
        const row = box.querySelector('tr[data-queue="' + CSS.escape(queue.name) + '"]');
        if (!row) { continue; }
        for (const [state, count] of Object.entries(queue.counts)) {
          const cell = row.querySelector('[data-count="' + state + '"]');
          if (cell) { cell.textContent = String(count); }
        }
      }
    });
  }

  function job(box) {
    if (box.dataset.finished === "1") { return; }
    poll(box.dataset.liveJob, function (data) {
      box.querySelector("[data-status]").textContent = data.status;
      box.querySelector("[data-attempts]").textContent = String(data.attempts);
      box.querySelector("[data-progress]").value = data.percent;
      box.querySelector("[data-percent]").textContent = data.percent + "%";
      box.querySelector("[data-progress-message]").textContent = data.progress_message;
      if (data.finished) {
        // The result, error and history are on the page's full version.
        window.location.reload();
        return false;
      }
      return true;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const counts = document.querySelector("[data-live-overview]");
    if (counts) { overview(counts); }
    const detail = document.querySelector("[data-live-job]");
    if (detail) { job(detail); }
    const all = document.getElementById("select-all");
    if (all) {
      all.addEventListener("change", function () {
        for (const box of document.querySelectorAll("input.action-select")) { box.checked = all.checked; }
      });
    }
  });
})();
