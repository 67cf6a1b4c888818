// The grid worker's phone view: my incidents, one-tap acknowledge, arrive, resolve, history.
"use strict";

const Worker = {
  open: new Map(),
  history: [],

  async start() {
    document.addEventListener("langchange", Worker.render);
    App.live({ incident: Worker.onIncident }, (up) => {
      const el = document.getElementById("live-state");
      el.dataset.i18n = up ? "live_on" : "live_off";
      el.classList.toggle("off", !up);
      el.textContent = App.t(el.dataset.i18n);
    });
    await Worker.load();
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
