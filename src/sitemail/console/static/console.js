// The console's live parts: polls the JSON routes and redraws what changed.
// No framework and nothing from another origin (the pages' CSP allows only 'self').
// Data is put into the page with textContent only, never as HTML.
"use strict";

const POLL_MS = 3000;
const csrf = document.body.dataset.csrf;

async function api(path, body) {
  const options = { credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.headers["X-CSRF-Token"] = csrf;
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 401) {
    // The session ended (idle, or the console restarted): back to the sign-in form.
    window.location.assign("/signin");
    throw new Error("signed out");
  }
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

// What an action did, or why an update failed: read out by screen readers (a live region).
function say(text) {
  const status = document.getElementById("status");
  if (status) status.textContent = text;
}

// When the page last refreshed: shown, but not a live region (it changes every few seconds).
function updated(errors) {
  const line = document.getElementById("updated");
  if (line) line.textContent = "Updated " + new Date().toLocaleTimeString();
  if (errors.length) say(errors.join(" "));
}

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function slug(name) { return name.replace(/[^A-Za-z0-9-]/g, "_"); }

// --- Topology ---------------------------------------------------------------------------

async function refreshTopology() {
  try {
    const live = await api("/api/live");
    for (const [name, state] of Object.entries(live.hosts)) {
      const group = document.getElementById("host-" + slug(name));
      const text = document.getElementById("state-" + slug(name));
      if (group) {
        group.classList.toggle("running", state === "running");
        group.classList.toggle("stopped", state !== "running");
      }
      if (text) text.textContent = "state: " + state;
    }
    for (const group of document.querySelectorAll(".host.server")) {
      const queue = document.getElementById("queue-" + slug(group.dataset.name));
      if (queue) queue.textContent = "queued: " + (live.queue_lengths[group.dataset.name] || 0);
    }
    for (const [name, fw] of Object.entries(live.firewalls)) {
      const group = document.getElementById("host-" + slug(name));
      const text = document.getElementById("insp-" + slug(name));
      if (text) text.textContent = "inspect esmtp: " + fw.inspection;
      if (group) group.classList.toggle("inspecting", fw.inspection === "on");
    }
    updated(live.errors);
  } catch (error) {
    say("Could not update: " + error.message);
  }
}

function table(caption, rows, columns) {
  const t = el("table");
  t.append(el("caption", caption));
  const head = el("tr");
  for (const c of columns) head.append(el("th", c, { scope: "col" }));
  t.append(head);
  for (const row of rows) {
    const tr = el("tr");
    for (const c of columns) {
      const v = row[c];
      tr.append(el("td", Array.isArray(v) ? v.join(", ") : v));
    }
    t.append(tr);
  }
  return t;
}

// The switch for ESMTP inspection: the troubleshooter's ASA lines, after the administrator
// has seen them and agreed (the server also wants "confirm": true).
function inspectionSwitch(group, name, state, switchLines) {
  const want = state === "on" ? "off" : "on";
  const box = el("div", null, { class: "switch" });
  const button = el("button", "Turn ESMTP inspection " + want, { type: "button" });
  const output = el("pre", null, { id: "asa-output", "aria-live": "polite" });
  button.addEventListener("click", async () => {
    const lines = switchLines[want];
    if (!window.confirm("Type these lines on " + name + "?\n\n" + lines.join("\n"))) return;
    button.disabled = true;
    try {
      const done = await api("/api/firewalls/" + encodeURIComponent(name) + "/inspection",
        { inspect: want, confirm: true });
      if (done.error) { say(done.error); output.textContent = done.error; return; }
      say(name + ": ESMTP inspection " + done.inspection);
      await showDetails(group);
      const shown = document.getElementById("asa-output");
      if (shown) shown.textContent = done.transcript;
      refreshTopology();
    } catch (error) {
      say(error.message);
      button.disabled = false;
    }
  });
  box.append(button, output);
  return box;
}

async function showDetails(group) {
  const box = document.getElementById("details");
  for (const g of document.querySelectorAll(".host.selected")) g.classList.remove("selected");
  group.classList.add("selected");
  const name = group.dataset.name;
  box.replaceChildren(el("h2", name, { id: "details-title" }), el("p", "Loading..."));
  try {
    if (group.dataset.kind === "server") {
      const d = await api("/api/servers/" + encodeURIComponent(name));
      box.replaceChildren(el("h2", name, { id: "details-title" }));
      box.append(table("Receive connectors", d.receive_connectors,
        ["Name", "Bindings", "RemoteIPRanges", "AuthMechanism", "PermissionGroups"]));
      box.append(table("Virtual directories", d.virtual_directories,
        ["Name", "InternalUrl", "ExternalUrl", "InternalAuthenticationMethods"]));
      for (const e of d.errors) box.append(el("p", e, { class: "error" }));
    } else if (group.dataset.kind === "firewall") {
      const d = await api("/api/firewalls/" + encodeURIComponent(name));
      box.replaceChildren(el("h2", name, { id: "details-title" }));
      if (d.error) { box.append(el("p", d.error, { class: "error" })); return; }
      box.append(el("p", "ESMTP inspection: " + d.inspection));
      box.append(inspectionSwitch(group, name, d.inspection, d.switch_lines));
      box.append(el("h3", "show running-config policy-map"), el("pre", d.policy));
      box.append(el("h3", "show service-policy"), el("pre", d.service_policy));
    } else {
      box.replaceChildren(el("h2", name, { id: "details-title" }),
        el("p", "The Internet host: its state is on the picture."));
    }
  } catch (error) {
    box.append(el("p", error.message, { class: "error" }));
  }
}

function startTopology() {
  for (const group of document.querySelectorAll("#topology .host")) {
    group.addEventListener("click", () => showDetails(group));
    group.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); showDetails(group); }
    });
  }
  refreshTopology();
  setInterval(refreshTopology, POLL_MS);
}

// --- Queue Viewer -----------------------------------------------------------------------

let selectedQueue = null;
let selectedMessage = null;

function radioRow(name, identity, selected, onSelect, cells, label) {
  const tr = el("tr");
  if (selected) tr.classList.add("selected");
  const radio = el("input", null, { type: "radio", name: name, value: identity, "aria-label": label });
  radio.checked = selected;
  radio.addEventListener("change", () => onSelect(identity));
  const td = el("td");
  td.append(radio);
  tr.append(td);
  for (const [value, css] of cells) {
    const cell = el("td", value);
    if (css) cell.className = css;
    tr.append(cell);
  }
  return tr;
}

function enable(selector, on) {
  for (const b of document.querySelectorAll(selector)) b.disabled = !on;
}

async function refreshQueues() {
  try {
    const result = await api("/api/queues");
    const body = document.querySelector("#queues tbody");
    const rows = result.objects.map((q) => radioRow("queue", q.Identity, q.Identity === selectedQueue,
      selectQueue, [[q.Identity], [q.DeliveryType], [q.Status, "status-" + q.Status],
        [q.MessageCount], [q.NextHopDomain], [q.LastError]], "Select queue " + q.Identity));
    body.replaceChildren(...rows);
    if (!result.objects.some((q) => q.Identity === selectedQueue)) {
      selectedQueue = null;
    }
    enable("[data-queue-action]", selectedQueue !== null);
    updated(result.errors);
    await refreshMessages();
  } catch (error) {
    say("Could not update: " + error.message);
  }
}

async function refreshMessages() {
  const body = document.querySelector("#messages tbody");
  document.getElementById("messages-queue").textContent = selectedQueue || "no queue selected";
  if (selectedQueue === null) { body.replaceChildren(); enable("[data-message-action]", false); return; }
  const result = await api("/api/messages?queue=" + encodeURIComponent(selectedQueue));
  const rows = result.objects.map((m) => radioRow("message", m.Identity, m.Identity === selectedMessage,
    selectMessage, [[m.Identity], [m.FromAddress], [m.Status], [m.Subject], [m.LastError]],
    "Select message " + m.Identity));
  body.replaceChildren(...rows);
  if (!result.objects.some((m) => m.Identity === selectedMessage)) selectedMessage = null;
  enable("[data-message-action]", selectedMessage !== null);
}

function selectQueue(identity) {
  selectedQueue = identity;
  selectedMessage = null;
  for (const tr of document.querySelectorAll("#queues tbody tr")) {
    tr.classList.toggle("selected", tr.querySelector("input").value === identity);
  }
  enable("[data-queue-action]", true);
  refreshMessages();
}

function selectMessage(identity) {
  selectedMessage = identity;
  enable("[data-message-action]", true);
}

async function act(kind, action, identity) {
  try {
    const result = await api("/api/" + kind + "/" + action, { identity: identity });
    const lines = [result.command, ...result.errors];
    document.getElementById("output").textContent = lines.join("\n");
    say(result.errors.length ? result.errors.join(" ") : result.command + ": done");
  } catch (error) {
    say(error.message);
  }
  await refreshQueues();
}

function startQueues() {
  for (const b of document.querySelectorAll("[data-queue-action]")) {
    b.addEventListener("click", () => selectedQueue && act("queues", b.dataset.queueAction, selectedQueue));
  }
  for (const b of document.querySelectorAll("[data-message-action]")) {
    b.addEventListener("click", () => selectedMessage && act("messages", b.dataset.messageAction, selectedMessage));
  }
  refreshQueues();
  setInterval(refreshQueues, POLL_MS);
}

// --- Troubleshooter ----------------------------------------------------------------------

function showReport(report) {
  const box = document.getElementById("report");
  box.replaceChildren(el("h2", "Report", { id: "report-title" }));
  const counts = {};
  for (const f of report.findings) counts[f.severity] = (counts[f.severity] || 0) + 1;
  box.append(el("p", report.findings.length
    ? Object.entries(counts).map(([k, v]) => v + " " + k).join(", ")
    : "No problem found in the running lab.", { id: "report-summary" }));
  report.findings.forEach((f, i) => {
    const section = el("section", null, { class: "finding sev-" + f.severity });
    section.append(el("h3", (i + 1) + ". " + f.title));
    section.append(el("p", "cause " + f.cause + " \u00b7 " + f.severity + " \u00b7 "
      + f.confidence + " confidence \u00b7 about " + f.subject, { class: "meta" }));
    section.append(el("p", f.summary));
    if (f.evidence.length) {
      section.append(table("Evidence", f.evidence.map((e) => ({
        Kind: e.kind, Where: e.location, Text: e.text })), ["Kind", "Where", "Text"]));
    }
    for (const fix of f.fixes) {
      const where = fix.kind === "asa" ? "On " + (fix.target || "the firewall") + " (ASA console)"
        : fix.kind === "shell" ? "Exchange Management Shell" : "By hand";
      section.append(el("p", where + (fix.comment ? " # " + fix.comment : ""), { class: "where" }));
      section.append(el("pre", fix.lines.join("\n"), { class: "fix" }));
    }
    box.append(section);
  });
  box.append(el("h3", "Looked at"));
  const looked = el("ul", null, { class: "looked" });
  for (const line of report.looked_at) looked.append(el("li", line));
  box.append(looked);
}

let troubleshootTimer = null;

async function pollTroubleshooter() {
  try {
    const job = await api("/api/troubleshoot");
    if (job.state === "none") return;
    const bar = document.getElementById("troubleshoot-progress");
    bar.max = job.progress.total;
    bar.value = job.progress.done;
    document.getElementById("troubleshoot-elapsed").textContent = job.elapsed + " s";
    const steps = document.getElementById("troubleshoot-steps");
    steps.replaceChildren(...job.steps.map((s) => el("li", s.text + " (at " + s.at + " s)")));
    const button = document.getElementById("run-troubleshooter");
    button.disabled = job.state === "running";
    if (job.state === "running") {
      const last = job.steps[job.steps.length - 1];
      say("Running: " + (last ? last.text : "starting") + "...");
      troubleshootTimer = setTimeout(pollTroubleshooter, 1000);
      return;
    }
    if (job.state === "failed") { say(job.error); return; }
    say("The troubleshooter finished in " + job.elapsed + " s.");
    showReport(job.report);
  } catch (error) {
    say("Could not update: " + error.message);
  }
}

function startTroubleshooter() {
  document.getElementById("run-troubleshooter").addEventListener("click", async () => {
    try {
      await api("/api/troubleshoot", { probes: document.getElementById("probes").checked });
    } catch (error) {
      say(error.message);
      return;
    }
    clearTimeout(troubleshootTimer);
    pollTroubleshooter();
  });
  pollTroubleshooter();
}

if (document.getElementById("topology")) startTopology();
if (document.getElementById("run-troubleshooter")) startTroubleshooter();
if (document.getElementById("queues")) startQueues();
