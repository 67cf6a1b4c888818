// The duty board: live incident list, critical alarm with a silenceable beep, overview, actions.
"use strict";

const Board = {
  incidents: new Map(),
  selected: null,
  people: [],
  muted: localStorage.getItem("muted") === "1",
  audio: null,
  dispatcher: false,
  // A street office's site filter (sites.js); null: all of its sites. Community staff: null.
  site: new URLSearchParams(location.search).get("site"),

  siteQuery(sep) { return Board.site ? `${sep}site=${encodeURIComponent(Board.site)}` : ""; },

  async start(person) {
    document.getElementById("who").textContent = person.name;
    Board.dispatcher = ["admin", "secretary", "duty_staff", "street_office"].includes(person.role);
    await Sites.start(person);
    document.getElementById("mute").addEventListener("click", Board.toggleMute);
    document.addEventListener("langchange", () => {
      Board.render(); Board.renderMute(); Board.loadOverview();
      if (Board.selected != null) Board.showDetail(Board.selected);
    });
    document.addEventListener("click", Board.unlockAudio, { once: true });
    Board.unlockAudio();
    Board.renderMute();
    App.live({
      incident: Board.onIncident,
      device_status: () => Board.loadOverview(),
    }, (up) => {
      const el = document.getElementById("live-state");
      el.dataset.i18n = up ? "live_on" : "live_off";
      el.classList.toggle("off", !up);
      el.textContent = App.t(el.dataset.i18n);
      if (up) Board.loadIncidents();  // after a reconnect, catch up on what was missed
    });
    if (Board.dispatcher) {
      Board.people = await App.api("/people").catch(() => []);
    }
    await Promise.all([Board.loadIncidents(), Board.loadOverview()]);
    setInterval(Board.alarmTick, 3000);
    setInterval(Board.loadOverview, 30000);
    // Pages are delivered (or fail) and ladder steps escalate after the incident last changed:
    // the open detail and the list follow them.
    setInterval(() => { if (Board.selected != null) Board.showDetail(Board.selected); }, 5000);
    setInterval(Board.loadIncidents, 15000);
  },

  async loadIncidents() {
    const page = await App.api(`/incidents?status=open&status=acknowledged&limit=500${Board.siteQuery("&")}`);
    Board.incidents = new Map(page.data.map((i) => [i.id, i]));
    Board.render();
  },

  async loadOverview() {
    const o = await App.api(`/stats/overview${Board.siteQuery("?")}`).catch(() => null);
    if (!o) return;
    // The header and the grid cards count alike, from the same answer: 未结 = open or
    // acknowledged, 待确认 = open and nobody has acknowledged it (api/routes/stats.py).
    document.getElementById("offline-count").textContent = o.offline_devices;
    document.getElementById("open-count").textContent = o.open_incidents;
    document.getElementById("unacked-count").textContent = o.unacknowledged;
    const box = document.getElementById("grids");
    box.replaceChildren(...o.grids.map((g) => App.el("div",
      { class: `grid-card${g.open_incidents ? " has-open" : ""}`, dataset: { grid: g.id } },
      App.el("b", {}, g.name),
      App.el("div", { class: "meta" }, `${App.t("devices_n", { n: g.devices })} · `,
        App.el("span", { class: g.offline ? "offline" : "" }, `${App.t("offline")} ${g.offline}`)),
      App.el("div", { class: "meta counts" },
        App.el("span", { class: "open-n" }, `${App.t("open_short")} ${g.open_incidents}`), " · ",
        App.el("span", { class: `unacked-n${g.unacknowledged ? " alert" : ""}` }, `${App.t("unacked_short")} ${g.unacknowledged}`)),
      ...g.buildings.map((b) => App.el("div", { class: "building" },
        App.el("span", {}, b.name),
        App.el("span", { class: b.offline ? "offline" : "" },
          `${App.t("online")} ${b.devices - b.offline} / ${App.t("offline")} ${b.offline}`))),
    )));
  },

  onIncident(incident) {
    Sites.changed();
    if (Board.site && incident.site !== Board.site) return;  // filtered out: only its card counts
    const known = Board.incidents.get(incident.id);
    if (["resolved", "closed"].includes(incident.status)) {
      Board.incidents.delete(incident.id);
    } else {
      Board.incidents.set(incident.id, incident);
      if (!known && incident.severity === "critical") Board.beep();
    }
    Board.render();
    if (Board.selected === incident.id) Board.showDetail(incident.id);
    Board.loadOverview();
  },

  sorted() {
    const rank = { critical: 0, major: 1, minor: 2, info: 3 };
    return [...Board.incidents.values()].sort((a, b) =>
      (a.status === "open" ? 0 : 1) - (b.status === "open" ? 0 : 1)
      || rank[a.severity] - rank[b.severity] || b.opened_at_ms - a.opened_at_ms);
  },

  render() {
    const list = document.getElementById("incident-list");
    const items = Board.sorted();
    if (!items.length) {
      list.replaceChildren(App.el("li", { class: "empty" }, App.t("no_incidents")));
      return;
    }
    list.replaceChildren(...items.map(Board.item));
  },

  item(i) {
    const actions = App.el("div", { class: "actions" });
    if (i.status === "open") {
      actions.append(App.el("button", { class: "primary ack", type: "button",
        onclick: (e) => { e.stopPropagation(); Board.act(i.id, "acknowledge"); } }, App.t("acknowledge")));
    }
    if (Board.dispatcher) {
      actions.append(App.el("button", { class: "assign", type: "button",
        onclick: (e) => { e.stopPropagation(); Board.assign(i); } }, App.t("assign")));
    }
    return App.el("li", {
      class: `incident sev-${i.severity} status-${i.status}${Board.selected === i.id ? " selected" : ""}`,
      dataset: { id: i.id, severity: i.severity, status: i.status },
      onclick: () => Board.showDetail(i.id),
    },
    App.el("div", {},
      App.el("div", { class: "title" }, App.el("span", { class: `badge sev-${i.severity}` }, App.t(i.severity)), App.title(i)),
      App.el("div", { class: "meta" }, `${i.location || i.device_id || ""} · `,
        App.el("span", { class: "grid-name" }, App.gridName(i.grid_id)), ` · ${App.time(i.opened_at_ms)}`),
      Board.pressure(i),
      App.el("div", { class: "meta" }, App.el("span", { class: "status" }, App.t(i.status)),
        i.acknowledged_by ? ` · ${App.t("acked_by", { who: App.personName(i.acknowledged_by) })}` : "",
        i.assignee ? App.el("span", { class: "assignee" }, ` · ${App.t("assigned_to", { who: App.personName(i.assignee) })}`) : "",
        i.arrived_at_ms ? ` · ${App.t("arrived_at", { t: App.time(i.arrived_at_ms).slice(6) })}` : ""),
      i.paged && i.paged.length ? App.el("div", { class: "meta" }, `${App.t("paged")}：`, App.pagedList(i.paged)) : ""),
    actions);
  },

  // How long it has been open, the acknowledgement countdown (or how far past it), escalations.
  pressure(i) {
    const line = App.el("div", { class: "meta pressure" }, App.since(i.opened_at_ms));
    if (i.status === "open" && i.ack_deadline_ms) line.append(" · ", App.deadline(i.ack_deadline_ms));
    if (i.escalations) line.append(" · ", App.el("span", { class: "escalated" }, App.t("escalated_n", { n: i.escalations })));
    return line;
  },

  async act(id, action, json) {
    try {
      const updated = await App.api(`/incidents/${id}/${action}`, { method: "POST", json: json || {} });
      Board.onIncident(updated);
    } catch (err) { alert(err.message); }
  },

  assign(incident) {
    const dialog = document.getElementById("assign-dialog");
    const select = document.getElementById("assignee");
    const fit = Board.people.filter((p) => p.active && (
      (p.site === incident.site || !p.site) && (
      ["duty_staff", "secretary", "admin"].includes(p.role) || p.grids.includes(incident.grid_id))));
    select.replaceChildren(...fit.map((p) => App.el("option", { value: p.id }, `${p.name}（${App.t(`role_${p.role}`)}）`)));
    dialog.onclose = () => {
      if (dialog.returnValue === "ok" && select.value) Board.act(incident.id, "assign", { assignee: select.value });
    };
    dialog.showModal();
  },

  async showDetail(id) {
    Board.selected = id;
    const d = await App.api(`/incidents/${id}`);
    document.getElementById("detail").hidden = false;
    if (Board.selected !== id) return;  // another incident was chosen meanwhile
    if (Board.incidents.has(id) && ["open", "acknowledged"].includes(d.incident.status)) {
      Board.incidents.set(id, d.incident);  // its card follows: escalations, deliveries
      Board.render();
    }
    document.getElementById("detail-title").textContent = `#${d.incident.id} ${App.title(d.incident)}`;
    document.getElementById("detail-paged").replaceChildren(App.pagedList(d.incident.paged));
    const acts = document.getElementById("detail-actions");
    acts.replaceChildren(...d.allowed_actions.filter((a) => ["acknowledge", "escalate"].includes(a)).map(
      (a) => App.el("button", { type: "button", class: a === "acknowledge" ? "primary" : "",
        onclick: () => Board.act(id, a) }, App.t(a))));
    document.getElementById("timeline").replaceChildren(...d.timeline.map((e) => App.el("li",
      { class: e.kind === "delivery_failed" ? "undelivered" : "" }, App.eventText(e))));
    document.querySelectorAll("li.incident").forEach((li) =>
      li.classList.toggle("selected", Number(li.dataset.id) === id));
  },

  // Sound: a WebAudio beep (no audio files); browsers allow it after the first click (login).
  unlockAudio() {
    if (!Board.audio && window.AudioContext) Board.audio = new AudioContext();
    if (Board.audio && Board.audio.state === "suspended") Board.audio.resume();
  },

  beep() {
    if (Board.muted || !Board.audio) return;
    const ctx = Board.audio;
    [0, 0.35].forEach((offset) => {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = "square";
      osc.frequency.value = 880;
      gain.gain.value = 0.15;
      osc.connect(gain).connect(ctx.destination);
      osc.start(ctx.currentTime + offset);
      osc.stop(ctx.currentTime + offset + 0.2);
    });
    Board.beeps = (Board.beeps || 0) + 1;
  },

  alarmTick() {
    const pending = [...Board.incidents.values()].some((i) => i.severity === "critical" && i.status === "open");
    document.body.classList.toggle("alarm", pending);
    if (pending) Board.beep();
  },

  toggleMute() {
    Board.muted = !Board.muted;
    localStorage.setItem("muted", Board.muted ? "1" : "0");
    Board.renderMute();
  },

  renderMute() {
    const b = document.getElementById("mute");
    b.dataset.i18n = Board.muted ? "unmute" : "mute";
    b.textContent = App.t(b.dataset.i18n);
    b.classList.toggle("danger", !Board.muted);
    b.setAttribute("aria-pressed", String(Board.muted));
  },
};

App.boot(Board.start);
