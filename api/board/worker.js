// The grid worker's phone view: my incidents, one-tap acknowledge, arrive, resolve, history.
"use strict";

const Worker = {
  open: new Map(),
  history: [],

  me: null,
  pressed: new Set(),  // "id:action" taps on their way to the server: never sent twice

  async start(person) {
    Worker.me = person.id;
    document.addEventListener("langchange", Worker.render);
    App.live({ incident: Worker.onIncident, reset: () => Worker.load() }, Worker.online);
    window.addEventListener("offline", () => Worker.online(false));
    window.addEventListener("hashchange", Worker.focus);
    document.addEventListener("click", () => Alarm.audio());  // a tap lets the siren sound
    document.getElementById("logout-everywhere").addEventListener("click", Worker.logoutEverywhere);
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.addEventListener("message", (e) => {
        if (e.data && e.data.kind === "open") location.href = e.data.url;
        if (e.data && e.data.kind === "push") Worker.load().catch(() => {});
      });
      navigator.serviceWorker.register("sw.js").then(() => Push.setup()).catch(() => {});
    }
    await Worker.load();
    setInterval(Worker.load, 30000);  // escalations and deliveries happen between changes
  },

  // The live stream's state; offline, a banner says so until the stream is back.
  online(up) {
    const el = document.getElementById("live-state");
    el.dataset.i18n = up ? "live_on" : "live_off";
    el.classList.toggle("off", !up);
    el.textContent = App.t(el.dataset.i18n);
    document.getElementById("offline-banner").hidden = up;
    if (up) Worker.load().catch(() => {});  // anything changed while away (the API is back)
  },

  async logoutEverywhere() {
    if (!confirm(App.t("logout_everywhere_confirm"))) return;
    try { await App.api("/auth/logout-everywhere", { method: "POST" }); } finally { App.logout(); }
  },

  focus() {
    const m = location.hash.match(/^#incident-(\d+)$/);
    const card = m && document.querySelector(`#my-incidents li[data-id="${m[1]}"]`);
    document.querySelectorAll("li.incident.selected").forEach((el) => el.classList.remove("selected"));
    if (card) { card.classList.add("selected"); card.scrollIntoView({ block: "start" }); }
  },

  async load() {
    const [open, done] = await Promise.all([
      App.api("/incidents?status=open&status=acknowledged&limit=200"),
      App.api("/incidents?status=resolved&status=closed&limit=30"),
    ]);
    Worker.open = new Map(open.data.map((i) => [i.id, i]));
    Worker.history = done.data;
    Worker.render();
  },

  onIncident(incident) {
    if (["resolved", "closed"].includes(incident.status)) {
      Worker.open.delete(incident.id);
      Worker.history = [incident, ...Worker.history.filter((i) => i.id !== incident.id)].slice(0, 30);
    } else {
      Worker.open.set(incident.id, incident);
      Worker.history = Worker.history.filter((i) => i.id !== incident.id);
    }
    Worker.render();
  },

  render() {
    // Most severe first; among equals the one waiting longest.
    const rank = { critical: 0, major: 1, minor: 2, info: 3 };
    const mine = [...Worker.open.values()].sort((a, b) =>
      rank[a.severity] - rank[b.severity] || a.opened_at_ms - b.opened_at_ms);
    const list = document.getElementById("my-incidents");
    list.replaceChildren(...(mine.length ? mine.map(Worker.card)
      : [App.el("li", { class: "empty" }, App.t("no_incidents"))]));
    Alarm.set(mine.some((i) => i.severity === "critical" && i.status === "open"));
    Worker.focus();
    document.getElementById("history").replaceChildren(...Worker.history.map((i) => App.el("li",
      { class: `incident sev-${i.severity} status-${i.status}`, dataset: { id: i.id } },
      App.el("div", { class: "title" }, App.title(i)),
      App.el("div", { class: "meta" },
        `${i.location || i.device_id || ""} · ${App.time(i.opened_at_ms)} · ${App.t(i.resolution || i.status)}`))));
  },

  card(i) {
    const button = (action, cls, onclick) => App.el("button",
      { class: `${cls} ${action}`, type: "button", onclick }, App.t(action));
    const actions = App.el("div", { class: "actions" });
    if (i.status === "open") actions.append(button("acknowledge", "primary", () => Worker.act(i.id, "acknowledge")));
    if (i.arrived_at_ms) {
      // Done once: shown as done, and not offered again.
      actions.append(App.el("button", { class: "arrive done", type: "button", disabled: "" },
        App.t("arrived_at", { t: App.time(i.arrived_at_ms).slice(6) })));
    } else {
      actions.append(button("arrive", "", () => Worker.act(i.id, "arrive")));
    }
    // 办结 only once someone has acknowledged it: acknowledging is what stops the ladder.
    if (i.status === "acknowledged") actions.append(button("resolve", "danger", () => Worker.resolve(i.id)));
    const mine = i.assignee === Worker.me;
    const pressure = App.el("div", { class: "meta pressure" }, App.since(i.opened_at_ms));
    if (i.status === "open" && i.ack_deadline_ms) pressure.append(" · ", App.deadline(i.ack_deadline_ms));
    if (i.escalations) pressure.append(" · ", App.el("span", { class: "escalated" }, App.t("escalated_n", { n: i.escalations })));
    return App.el("li", { class: `incident sev-${i.severity} status-${i.status}${mine ? " mine" : ""}`,
      dataset: { id: i.id, status: i.status } },
      App.el("div", { class: "title" }, App.el("span", { class: `badge sev-${i.severity}` }, App.t(i.severity)),
        mine ? App.el("span", { class: "badge mine" }, App.t("assigned_to_me")) : "", App.title(i)),
      App.el("div", { class: "meta" }, `${i.location || i.device_id || ""} · ${App.gridName(i.grid_id)} · ${App.time(i.opened_at_ms)}`),
      pressure,
      App.el("div", { class: "meta status" }, App.t(i.status),
        i.assignee && !mine ? ` · ${App.t("assigned_to", { who: App.personName(i.assignee) })}` : ""),
      ...WorkerCard.details(i),
      actions);
  },

  async act(id, action, json) {
    const key = `${id}:${action}`;
    if (Worker.pressed.has(key)) return;
    Worker.pressed.add(key);
    document.querySelectorAll(`li.incident[data-id="${id}"] button.${action}`).forEach((b) => { b.disabled = true; });
    try {
      Worker.onIncident(await App.api(`/incidents/${id}/${action}`, { method: "POST", json: json || {} }));
    } catch (err) { alert(err.message); Worker.render(); } finally { Worker.pressed.delete(key); }
  },

  resolve(id) {
    const dialog = document.getElementById("resolve-dialog");
    dialog.onclose = () => {
      if (dialog.returnValue !== "ok") return;
      Worker.act(id, "resolve", {
        category: document.getElementById("category").value,
        note: document.getElementById("resolve-note").value,
      });
    };
    dialog.showModal();
  },
};

App.boot(Worker.start);
