// The Resumable tab: renders /resumable/api/... JSON as text nodes only (never as parsed HTML), so a stored
// value can never become markup. Same-origin requests carry Airflow's session cookie.
"use strict";

(function () {
  const params = new URLSearchParams(window.location.search);
  const ti = {
    dagId: params.get("dag_id") || "",
    runId: params.get("run_id") || "",
    taskId: params.get("task_id") || "",
    mapIndex: /^-?\d+$/.test(params.get("map_index") || "") ? params.get("map_index") : "-1",
    // A Task Loop iteration (Airflow 3.4), once the state says which one is shown.
    regionIndex: /^\d+$/.test(params.get("region_index") || "") ? params.get("region_index") : null,
  };
  const enc = encodeURIComponent;
  const statePath = () =>
    `api/dags/${enc(ti.dagId)}/dagRuns/${enc(ti.runId)}/taskInstances/${enc(ti.taskId)}/state?map_index=${enc(ti.mapIndex)}` +
    (ti.regionIndex === null ? "" : `&region_index=${enc(ti.regionIndex)}`);
  const resetPath = () => `api/dags/${enc(ti.dagId)}/watermarks/${enc(ti.taskId)}/reset?map_index=${enc(ti.mapIndex)}`;

  const DECISIONS = {
    submit: "submitted (first submission)",
    reattach: "reattached to the running job",
    already_succeeded: "returned the result of the job that had succeeded",
    cleared_fresh: "submitted a new job (cleared by hand after success)",
    failed_resubmit: "resubmitted (the job had failed)",
    failed_resume: "repaired: restarted the failed parts of the job",
    resume_same_token: "repaired again with the same resume token",
    find_resume: "looked up a resume an earlier try may have started",
    found_resume: "found the resume an earlier try started",
    resume_declined: "resubmitted (the job could not be repaired)",
    failed_stop: "stopped: the job had failed and on_job_failure says fail",
    not_found_submit: "resubmitted (the external system no longer knew the job)",
    spec_changed_submit: "resubmitted (the job spec had changed)",
    cancel_and_submit: "cancelled the old job and submitted the new spec",
    conflict: "stopped: the spec changed while the job runs",
    find: "looked the job up by its token",
    found_by_token: "found the job an earlier try had submitted",
    resubmit_same_token: "submitted again with the same token",
  };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "testid") node.dataset.testid = value;
      else if (name === "class") node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const show = (value) => (value === null || value === undefined ? "—" : typeof value === "string" ? value : JSON.stringify(value));

  function pairs(rows) {
    const dl = el("dl");
    for (const [label, value, testid] of rows) {
      dl.append(el("dt", {}, label), el("dd", testid ? { testid, class: "mono" } : { class: "mono" }, show(value)));
    }
    return dl;
  }

  function table(headers, rows, testid) {
    const head = el("tr", {}, ...headers.map((h) => el("th", {}, h)));
    const body = rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", {}, c instanceof Node ? c : show(c)))));
    return el("table", testid ? { testid } : {}, el("thead", {}, head), el("tbody", {}, ...body));
  }

  function safeLink(url) {
    // Only http(s) links: a stored "javascript:" URL must never become clickable.
    try {
      const parsed = new URL(url);
      if (parsed.protocol === "https:" || parsed.protocol === "http:") {
        return el("a", { href: parsed.toString(), target: "_blank", rel: "noopener noreferrer", testid: "job-link" }, "open in its console");
      }
    } catch (_) {
      /* not a URL: shown as text below */
    }
    return null;
  }

  function jobSection(job) {
    const section = el("section", { testid: "job" }, el("h2", {}, "Job"));
    const pending =
      job.pending === "submit"
        ? "a submission started and no job id came back: the next try looks it up by its token"
        : job.pending === "resume"
          ? "a repair started and no answer came back: the next try looks it up first"
          : null;
    section.append(
      pairs([
        ["Job id", job.external_id, "job-id"],
        ["Idempotency token", job.token, "job-token"],
        ["Submitted by try", job.submitted_try, "job-try"],
        ["Submitted at", job.submitted_at],
        ["Repairs in this life", job.resumes],
        ...(pending ? [["Pending", pending, "job-pending"]] : []),
      ]),
    );
    if (job.url) {
      const link = safeLink(job.url);
      section.append(el("div", { class: "row" }, link || el("span", { class: "mono" }, job.url)));
    }
    if (job.history && job.history.length) {
      section.append(
        el("h2", {}, "What each try decided"),
        table(
          ["Try", "Decision", "Job", "At"],
          job.history.map((h) => [h.try_number, DECISIONS[h.decision] || h.decision, h.external_id, h.at]),
          "job-history",
        ),
      );
    }
    return section;
  }

  function checkpointSection(cp) {
    return el(
      "section",
      { testid: "checkpoint" },
      el("h2", {}, `Checkpoint: ${cp.name}`),
      pairs([
        ["Batches done", cp.batches_done, "checkpoint-batches"],
        ["Cursor", cp.cursor, "checkpoint-cursor"],
        ["Written", `${show(cp.written_at)} by try ${show(cp.written_try)}`],
        ["Walk complete", cp.complete ? "yes" : "no", "checkpoint-complete"],
        ["A hard kill now redoes", cp.redo, "checkpoint-redo"],
      ]),
    );
  }

  function watermarkSection(mark, canEdit) {
    const section = el("section", { testid: "watermark" }, el("h2", {}, `Watermark${mark.name ? ": " + mark.name : ""}`));
    const window_ = mark.window
      ? `from ${show(mark.window.since)} (mark ${show(mark.window.base)}, version ${show(mark.window.base_version)}), planned at try ${show(mark.window.planned_try)}${mark.window.rereads_own ? "; re-reads its own window (cleared after success)" : ""}`
      : "this run planned no window yet";
    section.append(
      pairs([
        ["Committed mark", mark.mark, "watermark-mark"],
        ["Version", mark.version],
        ["This run's window", window_, "watermark-window"],
        ["Kept in", `${mark.backend}: ${mark.location}`],
      ]),
    );
    if (mark.commits && mark.commits.length) {
      section.append(
        table(
          ["Version", "Run", "Try", "From", "To", "At", "Overlapped"],
          mark.commits.map((c) => [c.version, c.run_id, c.try_number, c.since, c.value, c.committed_at, (c.overlapped || []).join(", ") || "—"]),
          "watermark-commits",
        ),
      );
    }
    if (canEdit) {
      const input = el("input", { testid: "reset-to", placeholder: "new mark (empty: delete it)", "aria-label": "new mark" });
      const button = el("button", { class: "danger", testid: "reset-watermark" }, "Reset watermark…");
      button.addEventListener("click", () => {
        const text = input.value.trim();
        let to = null;
        if (text !== "") {
          try {
            to = JSON.parse(text);
          } catch (_) {
            to = text; // a bare timestamp, as the CLI takes it
          }
        }
        const what =
          to === null
            ? `Delete the watermark of ${ti.taskId}${mark.name ? " (" + mark.name + ")" : ""}, now ${show(mark.mark)}? Its next run starts from the operator's initial value and reads everything again.`
            : `Set the watermark of ${ti.taskId}${mark.name ? " (" + mark.name + ")" : ""} from ${show(mark.mark)} to ${show(to)}? Its next run reads from there (a run in flight then sees an overlap).`;
        confirmThen(what, () =>
          act("POST", resetPath(), { to, name: mark.name, confirm: true }, (answer) => (answer.reset || []).join("; ")),
        );
      });
      section.append(el("div", { class: "row" }, input, button));
    }
    return section;
  }

  function entriesSection(entries) {
    const rows = entries.filter((e) => !e.internal);
    const hidden = entries.length - rows.length;
    const details = el("details", { testid: "entries-details" }, el("summary", {}, `Stored keys (${rows.length}${hidden ? `, ${hidden} internal hidden` : ""}) as the CLI lists them`));
    details.append(
      table(
        ["Key", "Backend", "Meaning", "Value"],
        rows.map((e) => [e.key, e.backend, e.meaning, el("pre", { class: "mono" }, JSON.stringify(e.value, null, 1))]),
        "entries",
      ),
    );
    return el("section", {}, details);
  }

  let status = null;
  function say(kind, text) {
    if (status) status.remove();
    status = el("section", { class: kind === "error" ? "error" : "result", testid: kind === "error" ? "error" : "action-result", role: "status" }, text);
    document.getElementById("app").prepend(status);
  }

  function confirmThen(text, action) {
    const dialog = document.getElementById("confirm");
    document.getElementById("confirm-text").textContent = text;
    const yes = document.getElementById("confirm-yes");
    const no = document.getElementById("confirm-no");
    const close = () => {
      yes.onclick = no.onclick = null;
      dialog.close();
    };
    yes.onclick = () => {
      close();
      action();
    };
    no.onclick = close;
    dialog.showModal();
  }

  async function answerOf(response) {
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      /* not JSON */
    }
    if (response.ok) return body;
    const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : response.statusText;
    const why =
      response.status === 401
        ? "You are not logged in to Airflow (401): log in again."
        : response.status === 403
          ? `You lack the permission for this on DAG ${ti.dagId} (403): ${detail}`
          : `${response.status}: ${detail}`;
    throw new Error(why);
  }

  async function act(method, path, body, summary) {
    try {
      const response = await fetch(path, {
        method,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
      const answer = await answerOf(response);
      await load();
      say("result", `Done: ${summary(answer)}`);
    } catch (err) {
      say("error", err.message);
    }
  }

  function render(data) {
    const app = document.getElementById("app");
    app.replaceChildren();
    status = null;
    app.append(
      el(
        "p",
        { class: "muted" },
        `${data.dag_id} / ${data.run_id} / ${data.task_id}${data.map_index >= 0 ? " [" + data.map_index + "]" : ""}: task instance ${show(data.ti_state)}${data.backend ? ", state in " + data.backend : ""}`,
      ),
      el("section", { class: "clear", testid: "clear" }, el("strong", {}, "What a clear does now"), el("span", { testid: "clear-sentence" }, data.clear.sentence)),
    );
    ti.regionIndex = data.region_index === null || data.region_index === undefined ? null : String(data.region_index);
    if (data.regions && data.regions.length) {
      const list = el("section", { testid: "regions" }, el("h2", {}, "Task Loop iterations (each keeps its own state)"));
      for (const region of data.regions) {
        const here = String(region.region_index) === ti.regionIndex;
        const pick = el("button", here ? { "aria-current": "true", testid: "region" } : { testid: "region" }, `Iteration ${region.region_index}${here ? " (shown)" : ""}`);
        pick.addEventListener("click", () => {
          ti.regionIndex = String(region.region_index);
          load();
        });
        list.append(el("div", { class: "row" }, pick, el("span", {}, region.clear)));
      }
      app.append(list);
    }
    const empty = !data.job && !data.checkpoints.length && !data.entries.length;
    if (empty) app.append(el("section", { testid: "empty" }, "No state of airflow-provider-resumable is stored for this task instance."));
    if (data.job) app.append(jobSection(data.job));
    for (const cp of data.checkpoints) app.append(checkpointSection(cp));
    for (const mark of data.watermarks) app.append(watermarkSection(mark, data.can_edit));
    if (data.entries.length) app.append(entriesSection(data.entries));
    if (data.can_edit && data.delete_confirm) {
      const button = el("button", { class: "danger", testid: "delete-state" }, "Delete this task instance's state…");
      button.addEventListener("click", () =>
        confirmThen(data.delete_confirm, () => act("DELETE", statePath(), { confirm: true }, (answer) => `deleted ${(answer.deleted || []).join(", ")}`)),
      );
      app.append(el("div", { class: "row" }, button));
    } else if (!data.can_edit && !empty) {
      app.append(el("p", { class: "muted", testid: "read-only" }, "You may read this DAG but not edit it: no actions."));
    }
  }

  async function load() {
    try {
      const response = await fetch(statePath(), { credentials: "same-origin", headers: { Accept: "application/json" } });
      render(await answerOf(response));
    } catch (err) {
      document.getElementById("app").replaceChildren();
      say("error", err.message);
    }
  }

  window.addEventListener("DOMContentLoaded", load);
})();
