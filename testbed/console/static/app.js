// ELB Lab console: draws the lab (d3 3.5), keeps target health, events, charts (Chart.js 3)
// and flows up to date from the JSON API and the lab's server-sent-event stream.
"use strict";

const S = {
  config: {}, lab: null, status: null, topo: null, targets: null, asg: [], source: null,
  metrics: [], charts: {}, selected: null, replay: null,
};
const STATE_ORDER = ["unhealthy", "draining", "initial", "unavailable", "unused", "healthy"];
const $ = (id) => document.getElementById(id);

async function api(path, options) {
  const r = await fetch(path, options);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function esc(s) {
  return String(s == null ? "" : s).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
}

function clock(t) { return new Date(t * 1000).toTimeString().slice(0, 8); }

// ---- the drawing ------------------------------------------------------------------------
const HW = 112, HH = 30, GAP = 8, PER_ROW = 3, PAD = 10;
const COLW = PER_ROW * (HW + GAP) + 2 * PAD + GAP;

function hostStates() {
  const states = {};
  const rows = allTargetRows();
  for (const r of rows) {
    const host = r.Host || (r.Target && r.Target.Id);
    const st = (r.TargetHealth && r.TargetHealth.State) || "unused";
    const old = states[host];
    if (old === undefined || STATE_ORDER.indexOf(st) < STATE_ORDER.indexOf(old)) states[host] = st;
  }
  for (const g of S.asg || []) {
    for (const i of g.Instances || []) {
      const ls = i.LifecycleState || "";
      if (ls && ls !== "InService" && i.Host) states[i.Host] = ls.split(":")[0].toLowerCase();
    }
  }
  return states;
}

function allTargetRows() {
  const t = S.targets || {};
  let rows = (t.TargetHealthDescriptions || []).slice();
  for (const [lb, v] of Object.entries(t.ClassicLoadBalancers || {})) {
    for (const s of v.InstanceStates || []) {
      rows.push({LoadBalancer: lb, TargetGroup: lb, Host: s.InstanceId, Target: {Id: s.InstanceId, Port: ""},
        TargetHealth: {State: s.State === "InService" ? "healthy" : "unhealthy", Reason: s.ReasonCode, Description: s.Description}});
    }
  }
  return rows;
}

function layout() {
  const hosts = (S.status && S.status.hosts) || [];
  const subnets = (S.topo && S.topo.subnets) || [];
  const azs = Array.from(new Set(subnets.map((s) => s.az).concat(hosts.filter((h) => h.az).map((h) => h.az)))).sort();
  const columns = [{name: "Internet", kind: "internet", boxes: [{name: "internet", hosts: hosts.filter((h) => !h.az && !h.subnet)}]}];
  for (const az of azs) {
    const col = {name: az, kind: "az", boxes: []};
    const inAz = subnets.filter((s) => s.az === az).sort((a, b) => (b.public - a.public) || a.name.localeCompare(b.name));
    for (const s of inAz) {
      col.boxes.push({name: s.name, subnet: s, hosts: hosts.filter((h) => h.subnet === s.name)});
    }
    const known = new Set(col.boxes.map((b) => b.name));
    const other = hosts.filter((h) => h.az === az && !known.has(h.subnet));
    if (other.length) col.boxes.push({name: "(other)", hosts: other});
    columns.push(col);
  }
  let height = 0;
  columns.forEach((col, ci) => {
    col.x = ci * (COLW + GAP);
    let y = 26 + (col.kind === "internet" && S.topo && S.topo.has_internet_gateway ? HH + GAP : 0);
    for (const b of col.boxes) {
      const rows = Math.max(1, Math.ceil(b.hosts.length / PER_ROW));
      b.x = col.x + PAD; b.y = y; b.w = COLW - 2 * PAD; b.h = 20 + rows * (HH + GAP);
      b.hosts.forEach((h, i) => {
        h._x = b.x + GAP + (i % PER_ROW) * (HW + GAP);
        h._y = b.y + 18 + Math.floor(i / PER_ROW) * (HH + GAP);
      });
      y += b.h + GAP;
    }
    col.h = y + PAD;
    height = Math.max(height, col.h);
  });
  return {columns, height, width: columns.length * (COLW + GAP)};
}

function draw() {
  const L = layout();
  const root = d3.select("#drawing").html("");
  const svg = root.append("svg").attr("width", L.width).attr("height", L.height + 4).attr("id", "vpc");
  const cols = svg.selectAll("g.column").data(L.columns).enter().append("g").attr("class", "column")
    .attr("data-az", (c) => c.name);
  cols.append("rect").attr("class", (c) => c.kind).attr("x", (c) => c.x).attr("y", 2)
    .attr("width", COLW).attr("height", L.height - 2);
  cols.append("text").attr("x", (c) => c.x + 8).attr("y", 18).style("font-weight", "bold").text((c) => c.name);
  if (S.topo && S.topo.has_internet_gateway) {
    const igw = svg.append("g").attr("class", "igw").attr("data-host", "igw");
    igw.append("rect").attr("x", PAD).attr("y", 26).attr("width", COLW - 2 * PAD).attr("height", HH);
    igw.append("text").attr("x", PAD + 8).attr("y", 26 + 19).text("Internet gateway");
    igw.on("click", () => showDetails("Internet gateway", {routes: S.topo.igw_routes}));
  }
  const boxes = svg.selectAll("g.box").data(L.columns.flatMap((c) => c.boxes.filter((b) => c.kind !== "internet")))
    .enter().append("g").attr("class", "box").attr("data-subnet", (b) => b.name);
  boxes.append("rect").attr("class", (b) => "subnet" + (b.subnet && !b.subnet.public ? " private" : ""))
    .attr("x", (b) => b.x).attr("y", (b) => b.y).attr("width", (b) => b.w).attr("height", (b) => b.h)
    .on("click", (b) => showDetails("subnet " + b.name, b.subnet || {}));
  boxes.append("text").attr("x", (b) => b.x + 6).attr("y", (b) => b.y + 13)
    .text((b) => b.name + (b.subnet ? "  " + b.subnet.cidr + (b.subnet.public ? " public" : " private") : ""));
  const hosts = L.columns.flatMap((c) => c.boxes.flatMap((b) => b.hosts));
  const states = hostStates();
  const g = svg.selectAll("g.host").data(hosts, (h) => h.name).enter().append("g").attr("class", "host")
    .attr("data-host", (h) => h.name).attr("data-kind", (h) => h.kind)
    .attr("data-state", (h) => states[h.name] || "running")
    .on("click", hostClicked);
  g.append("title").text((h) => `${h.name} ${h.kind} ${h.ip || ""} ${h.role || ""}`);
  g.append("rect").attr("x", (h) => h._x).attr("y", (h) => h._y).attr("width", HW).attr("height", HH);
  g.append("text").attr("x", (h) => h._x + 5).attr("y", (h) => h._y + 12).text((h) => h.name.slice(0, 17));
  g.append("text").attr("class", "sub").attr("x", (h) => h._x + 5).attr("y", (h) => h._y + 25)
    .style("fill", "#545b64").text((h) => `${h.ip || ""} ${h.kind === "instance" ? "" : h.kind}`.slice(0, 20));
}

function recolour() {
  const states = hostStates();
  d3.selectAll("g.host").attr("data-state", (h) => states[h.name] || "running");
}

function hostClicked(h) {
  d3.selectAll("g.host").classed("selected", (x) => x.name === h.name);
  const groups = ((S.topo && S.topo.host_groups) || {})[h.name] || [];
  const sgs = ((S.topo && S.topo.security_groups) || []).filter((g) => groups.includes(g.name));
  const subnet = ((S.topo && S.topo.subnets) || []).find((s) => s.name === h.subnet);
  const targets = allTargetRows().filter((r) => (r.Host || r.Target.Id) === h.name)
    .map((r) => `${r.LoadBalancer}/${r.TargetGroup}: ${r.TargetHealth.State} ${r.TargetHealth.Reason || ""}`);
  showDetails(h.name, {host: h, targets, routes: subnet ? subnet.routes : [], security_groups: sgs});
  if (S.config.allow_actions) document.querySelector("#fault-form [name=host]").value = h.name;
}

function showDetails(title, obj) { $("details").textContent = title + "\n" + JSON.stringify(obj, null, 1); }

// ---- target health, events -------------------------------------------------------------
function renderTargets() {
  const rows = allTargetRows();
  const byGroup = {};
  for (const r of rows) (byGroup[`${r.LoadBalancer} / ${r.TargetGroup}`] ||= []).push(r);
  const parts = [];
  for (const [group, rs] of Object.entries(byGroup)) {
    parts.push(`<h3 style="font-size:12px;margin:6px 0 2px">${esc(group)}</h3><table data-target-group="${esc(group)}">` +
      "<tr><th>target</th><th>port</th><th>AZ</th><th>state</th><th>reason</th><th>description</th></tr>" +
      rs.map((r) => `<tr data-target="${esc(r.Host || r.Target.Id)}" data-state="${esc(r.TargetHealth.State)}">` +
        `<td>${esc(r.Target.Id)}${r.Host && !String(r.Target.Id).endsWith(r.Host) ? ` (${esc(r.Host)})` : ""}</td><td>${esc(r.Target.Port)}</td><td>${esc(r.Target.AvailabilityZone || r.AvailabilityZone || "")}</td>` +
        `<td class="${esc(r.TargetHealth.State)}">${esc(r.TargetHealth.State)}</td><td>${esc(r.TargetHealth.Reason || "")}</td>` +
        `<td>${esc(r.TargetHealth.Description || "")}</td></tr>`).join("") + "</table>");
  }
  $("targets").innerHTML = parts.join("") || '<span class="muted">no target groups</span>';
}

// A health transition from the stream, shown at once (the full rows follow from /targets).
function applyTransition(e) {
  for (const r of (S.targets && S.targets.TargetHealthDescriptions) || []) {
    if (r.Key === e.target && r.LoadBalancer === e.load_balancer && r.TargetGroup === e.target_group) {
      r.TargetHealth = {State: e.new, Reason: e.reason || "", Description: ""};
    }
  }
  renderTargets(); recolour();
}

function addEvent(text, t) {
  const li = document.createElement("li");
  li.textContent = `${clock(t)}  ${text}`;
  const list = $("events");
  list.insertBefore(li, list.firstChild);
  while (list.children.length > 500) list.removeChild(list.lastChild);
}

function eventText(e) { return `${e.status} ${e.logical_id} ${e.resource_type} ${e.reason || ""}`; }
function healthText(e) { return `${e.target} ${e.old} -> ${e.new} (${e.load_balancer}/${e.target_group}) ${e.reason || ""}`; }

// ---- charts ------------------------------------------------------------------------------
const CHARTS = [
  {id: "per-target", title: "Requests / new flows per second, per target",
   pick: (r) => r.target && ["NewFlowCount", "RequestCount", "RequestCountPerTarget"].includes(r.metric)},
  {id: "new-flows", title: "New flows / s (per LB)", pick: (r) => r.metric === "NewFlowCount" && !r.target && !r.target_group},
  {id: "active-flows", title: "Active flows", pick: (r) => r.metric === "ActiveFlowCount" && !r.target},
  {id: "health", title: "Healthy / unhealthy hosts", pick: (r) => r.metric === "HealthyHostCount" || r.metric === "UnHealthyHostCount"},
  {id: "bytes", title: "Bytes / s (load balancers)", pick: (r) => r.metric === "ProcessedBytes"},
  {id: "snmp", title: "SNMP interface rates, bytes / s (testbed console --snmp)", pick: (r) => r.metric === "SnmpInOctets" || r.metric === "SnmpOutOctets"},
];
const COLOURS = ["#0073bb", "#d13212", "#1d8102", "#ff9900", "#8e44ad", "#16a085", "#7f8c8d", "#c0392b", "#2c3e50", "#f1c40f"];

function makeCharts() {
  const box = $("charts");
  box.innerHTML = "";
  for (const c of CHARTS) {
    const div = document.createElement("div");
    div.className = "chart";
    div.innerHTML = `<canvas id="chart-${c.id}" data-chart="${c.id}" data-points="0"></canvas>`;
    box.appendChild(div);
    S.charts[c.id] = new Chart(div.firstChild.getContext("2d"), {
      type: "line",
      data: {datasets: []},
      options: {
        animation: false, parsing: false, normalized: true, maintainAspectRatio: false,
        plugins: {title: {display: true, text: c.title}, legend: {position: "bottom", labels: {boxWidth: 8, font: {size: 9}}}},
        elements: {point: {radius: 0}, line: {borderWidth: 1.5}},
        scales: {x: {type: "linear", ticks: {callback: (v) => clock(v), maxTicksLimit: 6}}, y: {beginAtZero: true}},
      },
    });
  }
}

function label(r) { return [r.metric, r.load_balancer, r.target_group, r.target].filter(Boolean).join(" "); }

function updateCharts(rows, now) {
  const minutes = Number($("minutes").value);
  const since = now - minutes * 60;
  for (const c of CHARTS) {
    const chart = S.charts[c.id];
    const series = {};
    for (const r of rows) {
      if (r.time < since || r.time > now || !c.pick(r)) continue;
      (series[label(r)] ||= []).push({x: r.time, y: r.value});
    }
    chart.data.datasets = Object.entries(series).sort().map(([name, data], i) => ({
      label: name, data, borderColor: COLOURS[i % COLOURS.length], backgroundColor: COLOURS[i % COLOURS.length],
    }));
    // Start where the data starts (a console opened a minute ago has a minute to show).
    const first = Math.min(...Object.values(series).map((s) => s[0].x), now - 30);
    chart.options.scales.x.min = Math.max(since, first);
    chart.options.scales.x.max = now;
    chart.update("none");
    chart.canvas.dataset.points = String(Object.values(series).reduce((n, s) => n + s.length, 0));
  }
}

// ---- flows -------------------------------------------------------------------------------
async function refreshFlows() {
  if (!S.lab || S.config.replay) return;
  const client = $("flow-client").value.trim();
  try {
    const rows = await api(`/api/labs/${S.lab}/flows` + (client ? `?client=${encodeURIComponent(client)}` : ""));
    if (!rows.length) { $("flows").innerHTML = '<span class="muted">no flows right now</span>'; return; }
    const cols = Object.keys(rows[0]);
    $("flows").innerHTML = "<table id=\"flow-table\"><tr>" + cols.map((c) => `<th>${esc(c)}</th>`).join("") + "</tr>" +
      rows.slice(0, 500).map((r) => "<tr>" + cols.map((c) => `<td>${esc(r[c])}</td>`).join("") + "</tr>").join("") + "</table>";
  } catch (e) { $("flows").textContent = e.message; }
}

// ---- live lab ----------------------------------------------------------------------------
let targetsTimer = null;
function refreshTargetsSoon() {
  if (targetsTimer) return;
  targetsTimer = setTimeout(async () => {
    targetsTimer = null;
    try {
      S.targets = await api(`/api/labs/${S.lab}/targets`);
      if (S.status.auto_scaling_groups.length) S.asg = await api(`/api/labs/${S.lab}/asg`);
      renderTargets(); recolour();
    } catch (e) { $("stream-state").textContent = e.message; }
  }, 100);
}

// Hosts come and go (Auto Scaling, stack updates): after an event, status again; the drawing
// is redone when the set of hosts changed.
let statusTimer = null;
function refreshStatusSoon() {
  if (statusTimer) return;
  statusTimer = setTimeout(async () => {
    statusTimer = null;
    try {
      const status = await api(`/api/labs/${S.lab}/status`);
      const names = (st) => st.hosts.map((h) => h.name).sort().join(",");
      const changed = names(status) !== names(S.status);
      S.status = status;
      $("lab-state").textContent = `${status.state}, ${status.hosts.length} hosts, ${status.datapath || ""} datapath`;
      if (changed) { draw(); fillActionForms(); }
    } catch (e) { $("stream-state").textContent = e.message; }
  }, 300);
}

async function openLab(name) {
  if (S.source) S.source.close();
  S.lab = name; S.metrics = [];
  location.hash = name;
  const asked = Promise.all([
    api(`/api/labs/${name}/status`), api(`/api/labs/${name}/topology`).catch(() => null),
    api(`/api/labs/${name}/targets`).catch(() => ({})), api(`/api/labs/${name}/events`),
    api(`/api/labs/${name}/metrics?minutes=15`),
  ]);
  if (!Object.keys(S.charts).length) makeCharts();  // while the server answers
  const [status, topo, targets, events, metrics] = await asked;
  S.status = status; S.topo = topo; S.targets = targets; S.metrics = metrics.rows;
  S.asg = status.auto_scaling_groups.length ? await api(`/api/labs/${name}/asg`).catch(() => []) : [];
  $("lab-state").textContent = `${status.state}, ${status.hosts.length} hosts, ${status.datapath || ""} datapath`;
  draw(); renderTargets();
  $("events").innerHTML = "";
  for (const e of events.slice(-200)) addEvent(eventText(e), e.time);
  fillActionForms();
  updateCharts(S.metrics, Date.now() / 1000);
  const src = new EventSource(`/api/labs/${name}/stream`);
  S.source = src;
  src.onopen = () => { $("stream-state").textContent = "live"; };
  src.onerror = () => { $("stream-state").textContent = "stream reconnecting"; };
  src.addEventListener("event", (m) => {
    const e = JSON.parse(m.data);
    addEvent(eventText(e), e.time);
    refreshTargetsSoon();
    if (e.resource_type !== "Lab::TargetHealth" && e.resource_type !== "Lab::Snmp::Trap") refreshStatusSoon();
  });
  src.addEventListener("health", (m) => {
    const e = JSON.parse(m.data);
    addEvent(healthText(e), e.time);
    applyTransition(e);
    refreshTargetsSoon();
  });
  src.addEventListener("notice", (m) => { $("stream-state").textContent = "live; " + JSON.stringify(JSON.parse(m.data)); });
  src.addEventListener("metrics", (m) => {
    const rows = JSON.parse(m.data);
    S.metrics.push(...rows);
    const cut = Date.now() / 1000 - 15 * 60;
    while (S.metrics.length && S.metrics[0].time < cut) S.metrics.shift();
    updateCharts(S.metrics, Date.now() / 1000);
  });
  refreshFlows();
}

// ---- actions -----------------------------------------------------------------------------
function fillActionForms() {
  if (!S.config.allow_actions) return;
  const sel = document.querySelector("#fault-form [name=host]");
  sel.innerHTML = S.status.hosts.filter((h) => h.kind === "instance")
    .map((h) => `<option>${esc(h.name)}</option>`).join("");
}

async function act(kind, body) {
  try {
    const r = await api(`/api/labs/${S.lab}/actions/${kind}`, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    $("action-result").textContent = `${kind}: ` + JSON.stringify(r.result).slice(0, 300);
  } catch (e) { $("action-result").textContent = `${kind} refused: ${e.message}`; }
}

function wireActions() {
  if (!S.config.allow_actions) { $("actions-panel").remove(); return; }
  $("actions-panel").hidden = false;
  $("fault-form").onsubmit = (ev) => { ev.preventDefault(); const f = ev.target; act("fault", {host: f.host.value, kind: f.kind.value}); };
  $("register-form").onsubmit = (ev) => {
    ev.preventDefault(); const f = ev.target;
    act(ev.submitter ? ev.submitter.value : "register", {target_group: f.target_group.value, target: f.target.value});
  };
  $("scale-form").onsubmit = (ev) => { ev.preventDefault(); const f = ev.target; act("scale", {group: f.group.value, desired: Number(f.desired.value)}); };
}

// ---- replay of a results folder ----------------------------------------------------------
async function openReplay() {
  const R = await api("/api/replay");
  S.replay = R;
  $("replay").hidden = false;
  $("lab-picker").innerHTML = `<option>${esc(R.folder)}</option>`;
  $("drawing-panel").querySelector("h2").textContent = "VPC (not recorded in results)";
  $("replay-info").textContent = `${R.files.join(", ")}`;
  if (R.start == null) { $("replay-time").textContent = "nothing with a time in this folder"; return; }
  const slider = $("slider");
  const show = () => {
    const t = R.start + (R.end - R.start) * slider.value / 1000;
    $("replay-time").textContent = `${clock(t)} (+${(t - R.start).toFixed(1)} s)`;
    const latest = {};
    for (const h of R.health) if (h.time <= t) latest[`${h.load_balancer}/${h.target_group}/${h.target}`] = h;
    S.targets = {TargetHealthDescriptions: Object.values(latest).map((h) => ({LoadBalancer: h.load_balancer, TargetGroup: h.target_group,
      Host: String(h.target).split(":")[0], Target: {Id: h.target, Port: ""}, TargetHealth: {State: h.new, Reason: h.reason}}))};
    renderTargets();
    $("events").innerHTML = "";
    const evs = R.events.filter((e) => e.time <= t).map((e) => [e.time, eventText(e)])
      .concat(R.health.filter((h) => h.time <= t).map((h) => [h.time, healthText(h)])).sort((a, b) => a[0] - b[0]);
    for (const [time, text] of evs.slice(-300)) addEvent(text, time);
    const reqs = R.requests.filter((r) => r.start <= t);
    const errors = reqs.filter((r) => r.error).length;
    $("flows").textContent = `${reqs.length} requests up to here, ${errors} failed`;
    updateCharts(R.metrics.concat(requestRates(reqs)), t);
  };
  slider.oninput = show;
  $("minutes").onchange = show;
  show();
}

function requestRates(reqs) {
  const per = {};
  for (const r of reqs) {
    const sec = Math.floor(r.start);
    const key = `${sec}|${r.backend || r.error || "?"}`;
    per[key] = (per[key] || 0) + 1;
  }
  return Object.entries(per).map(([k, n]) => {
    const [sec, backend] = k.split("|");
    return {time: Number(sec), namespace: "requests.csv", metric: "RequestCount", load_balancer: "", target_group: "", target: backend, value: n};
  });
}

// ---- start -------------------------------------------------------------------------------
async function main() {
  const labsAsked = api("/api/labs");  // at the same time as the config: one round trip less
  labsAsked.catch(() => null);
  S.config = await api("/api/config");
  $("mode").textContent = S.config.replay ? "replay" : S.config.allow_actions ? "actions allowed" : "read-only";
  if (S.config.allow_actions) $("mode").classList.add("write");
  wireActions();
  if (S.config.replay) {
    makeCharts();
    await openReplay();
    document.body.dataset.ready = "1";
    return;
  }
  const labs = await labsAsked;
  const picker = $("lab-picker");
  picker.innerHTML = labs.map((l) => `<option value="${esc(l.name)}">${esc(l.name)} (${esc(l.state)})</option>`).join("");
  picker.onchange = () => openLab(picker.value);
  $("minutes").onchange = () => updateCharts(S.metrics, Date.now() / 1000);
  $("flow-client").onchange = refreshFlows;
  setInterval(refreshFlows, 5000);
  const wanted = location.hash.slice(1);
  const first = labs.find((l) => l.name === wanted) || labs.find((l) => l.alive) || labs[0];
  if (!first) { $("lab-state").textContent = "no labs running (testbed up TEMPLATE)"; return; }
  picker.value = first.name;
  await openLab(first.name);
  document.body.dataset.ready = "1";
  document.body.dataset.readyMs = String(Math.round(performance.now()));
}

main().catch((e) => { $("lab-state").textContent = "error: " + e.message; document.body.dataset.ready = "error"; });
