// The grid worker's phone view: my incidents, one-tap acknowledge, arrive, resolve, history.
"use strict";

const Worker = {
  open: new Map(),
  history: [],

  async start() {
    document.addEventListener("langchange", Worker.render);
    App.live({ incident: Worker.onIncident, reset: () => Worker.load() }, Worker.online);
    window.addEventListener("offline", () => Worker.online(false));
    window.addEventListener("hashchange", Worker.focus);
    document.addEventListener("click", () => Alarm.audio());  // a tap lets the siren sound
    document.getElementById("logout-everywhere").addEventListener("click", Worker.logoutEverywhere);
    setInterval(WorkerCard.tick, 30000);
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.addEventListener("message", (e) => {
        if (e.data && e.data.kind === "open") location.href = e.data.url;
        if (e.data && e.data.kind === "push") Worker.load().catch(() => {});
      });
      navigator.serviceWorker.register("sw.js").then(() => Push.setup()).catch(() => {});
    }
    await Worker.load();
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
    const mine = [...Worker.open.values()].sort((a, b) => b.opened_at_ms - a.opened_at_ms);
    const list = document.getElementById("my-incidents");
    list.replaceChildren(...(mine.length ? mine.map(Worker.card)
      : [App.el("li", { class: "empty" }, App.t("no_incidents"))]));
    Alarm.set(mine.some((i) => i.severity === "critical" && i.status === "open"));
    Worker.focus();
    document.getElementById("history").replaceChildren(...Worker.history.map((i) => App.el("li",
      { class: `incident sev-${i.severity} status-${i.status}`, dataset: { id: i.id } },
      App.el("div", { class: "title" }, i.title),
      App.el("div", { class: "meta" },
        `${i.location || i.device_id || ""} · ${App.time(i.opened_at_ms)} · ${App.t(i.resolution || i.status)}`))));
  },

  card(i) {
    const button = (action, cls, onclick) => App.el("button",
      { class: `${cls} ${action}`, type: "button", onclick }, App.t(action));
    const actions = App.el("div", { class: "actions" });
    if (i.status === "open") actions.append(button("acknowledge", "primary", () => Worker.act(i.id, "acknowledge")));
    actions.append(button("arrive", "", () => Worker.act(i.id, "arrive")));
    actions.append(button("resolve", "danger", () => Worker.resolve(i.id)));
    return App.el("li", { class: `incident sev-${i.severity} status-${i.status}`, dataset: { id: i.id, status: i.status } },
      App.el("div", { class: "title" }, App.el("span", { class: `badge sev-${i.severity}` }, App.t(i.severity)), i.title),
      App.el("div", { class: "meta" }, `${i.location || i.device_id || ""} · ${App.time(i.opened_at_ms)}`),
      App.el("div", { class: "meta status" }, App.t(i.status)),
      ...WorkerCard.details(i),
      actions);
  },

  async act(id, action, json) {
    try {
      Worker.onIncident(await App.api(`/incidents/${id}/${action}`, { method: "POST", json: json || {} }));
    } catch (err) { alert(err.message); }
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
