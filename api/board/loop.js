// The community's closed loop on the duty board: intake, triage, referral, verification.
"use strict";

const LoopBoard = {
  selected: null,
  buildings: [],

  async start() {
    const form = document.getElementById("intake");
    const [grids, buildings, departments] = await Promise.all([
      App.api(`/grids?limit=500${App.siteQuery("&")}`), App.api(`/buildings?limit=500${App.siteQuery("&")}`), App.api("/loop/departments"),
    ]);
    const list = (x) => (Array.isArray(x) ? x : x.data || []);
    LoopBoard.buildings = list(buildings);
    form.grid_id.replaceChildren(...list(grids).map((g) => App.el("option", { value: g.id }, g.name)));
    const fillBuildings = () => {
      const here = LoopBoard.buildings.filter((b) => b.grid_id === form.grid_id.value);
      form.building_id.replaceChildren(App.el("option", { value: "" }, "-"),
        ...here.map((b) => App.el("option", { value: b.id }, b.name)));
    };
    form.grid_id.addEventListener("change", fillBuildings);
    fillBuildings();
    document.getElementById("department").replaceChildren(
      ...departments.map((d) => App.el("option", { value: d.id }, d.name)));
    const toggle = () => {
      form.querySelector(".caller").hidden = form.source.value !== "hotline";
      form.querySelector(".hazard-fields").hidden = !form.hazard.checked;
    };
    form.source.addEventListener("change", toggle);
    form.hazard.addEventListener("change", toggle);
    toggle();
    form.addEventListener("submit", LoopBoard.intake);
    document.getElementById("refer").addEventListener("submit", LoopBoard.refer);
    document.getElementById("verify-form").addEventListener("submit", LoopBoard.verify);
    document.getElementById("comment-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      await LoopBoard.act(LoopBoard.selected, "comment", { note: e.target.note.value });
      e.target.note.value = "";
    });
    document.getElementById("silence-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      await LoopBoard.act(LoopBoard.selected, "silence", { hours: Number(e.target.hours.value), reason: "设备维护" });
    });
    document.addEventListener("langchange", LoopBoard.refresh);
    await LoopBoard.refresh();
    // A failed refresh (network gone, login expired: App.api logs out) waits for the next one.
    setInterval(() => LoopBoard.refresh().catch(() => {}), 15000);
  },

  async intake(e) {
    e.preventDefault();
    const f = e.target;
    const msg = document.getElementById("intake-msg");
    const body = {
      source: f.source.value, category: f.category.value, grid_id: f.grid_id.value,
      building_id: f.building_id.value || null, unit_room: f.unit_room.value,
      location: f.location.value, description: f.description.value, severity: f.severity.value,
    };
    if (body.source === "hotline") { body.caller_name = f.caller_name.value; body.caller_phone = f.caller_phone.value; }
    if (f.hazard.checked) {
      Object.assign(body, { hazard: true, deadline_ms: f.deadline.value ? new Date(f.deadline.value).getTime() : null,
        responsible_kind: f.responsible_kind.value, responsible_name: f.responsible_name.value });
    }
    try {
      const incident = await App.api("/incidents", { method: "POST", json: body });
      if (f.photo.files[0]) await Loop.upload(incident.id, f.photo.files[0]);
      Loop.msg(msg, `${App.t("saved")} #${incident.id}`);
      f.reset();
      await LoopBoard.refresh();
      await LoopBoard.select(incident.id);
    } catch (err) { Loop.msg(msg, err.message, true); }
  },

  item(i, buttons = []) {
    const li = App.el("li", { class: `incident sev-${i.severity} status-${i.status}`, dataset: { id: i.id },
      onclick: () => LoopBoard.select(i.id) },
    App.el("div", {}, App.el("div", { class: "title" }, App.title(i)),
      App.el("div", { class: "meta" }, `#${i.id} · ${i.location || i.grid_id} · ${App.time(i.opened_at_ms)}`)),
    App.el("div", { class: "actions" }, buttons));
    return li;
  },

  async refresh() {
    const [queue, resolved, open] = await Promise.all([
      App.api(`/loop/triage${App.siteQuery("?")}`), App.api(`/incidents?status=resolved&limit=50${App.siteQuery("&")}`),
      App.api(`/incidents?status=open&status=acknowledged&limit=50${App.siteQuery("&")}`),
    ]);
    const tierButtons = (i) => ["grid", "community"].map((tier) => App.el("button", {
      type: "button", class: tier === "grid" ? "primary" : "", dataset: { tier },
      onclick: async (e) => { e.stopPropagation(); await LoopBoard.act(i.id, "triage", { tier }); },
    }, App.t(`tier_${tier}`)));
    const fill = (id, items, buttons) => {
      const ul = document.getElementById(id);
      ul.replaceChildren(...(items.length ? items.map((i) => LoopBoard.item(i, buttons ? buttons(i) : []))
        : [App.el("li", { class: "empty" }, App.t("no_items"))]));
    };
    fill("triage", queue, tierButtons);
    fill("verify", resolved.data);
    const waiting = new Set(queue.map((i) => i.id));
    fill("progress", open.data.filter((i) => !waiting.has(i.id)));
    if (LoopBoard.selected) await LoopBoard.select(LoopBoard.selected);
  },

  async act(id, action, body) {
    const msg = document.getElementById("case-msg");
    try {
      await App.api(`/incidents/${id}/${action}`, { method: "POST", json: body });
      Loop.msg(msg, App.t("saved"));
      LoopBoard.selected = id;
      await LoopBoard.refresh();
    } catch (err) { Loop.msg(msg, err.message, true); }
  },

  async select(id) {
    LoopBoard.selected = id;
    const [detail, c] = await Promise.all([App.api(`/incidents/${id}`), App.api(`/incidents/${id}/case`)]);
    const i = detail.incident;
    document.getElementById("case").hidden = false;
    document.getElementById("case-title").textContent = `#${i.id} ${App.title(i)}`;
    const tier = c.tier ? App.el("span", { class: `tier ${c.tier}` }, App.t(`tier_${c.tier}`)) : "";
    const maintenance = detail.timeline.some((e) => e.kind === "under_maintenance")
      ? App.el("span", { class: "badge maintenance" }, App.t("under_maintenance")) : "";
    const body = document.getElementById("case-body");
    body.replaceChildren(App.el("div", {}, App.el("span", { class: "badge" }, App.t(i.status)), tier, maintenance),
      Loop.caseLines(c), await Loop.thumbs(i.id, c.photos));
    const can = new Set(detail.allowed_actions);
    LoopBoard.actionBar(i, can);
    document.getElementById("refer").hidden = !can.has("refer");
    document.getElementById("verify-form").hidden = !can.has("verify");
    document.getElementById("silence-form").hidden = !can.has("silence") || !i.device_id;
    const notice = document.getElementById("notice-link");
    notice.hidden = !c.hazard;
    notice.href = `notice.html?id=${i.id}`;
    document.getElementById("case-timeline").replaceChildren(...detail.timeline.map((e) =>
      App.el("li", {}, `${App.time(e.at_ms)} ${e.actor} ${Loop.kind(e.kind)} ${e.note || ""}`)));
  },

  // The lifecycle actions this person may take now, each one button (resolve with its category).
  actionBar(i, can) {
    const bar = document.getElementById("case-actions");
    const simple = ["acknowledge", "arrive", "escalate", "reopen"].filter((a) => can.has(a));
    const buttons = simple.map((a) => App.el("button", { type: "button", dataset: { action: a },
      onclick: () => LoopBoard.act(i.id, a, {}) }, App.t(a)));
    if (can.has("resolve")) {
      const category = App.el("select", { "aria-label": App.t("category") },
        ...["handled", "real_emergency", "false_alarm", "device_test", "device_fault"].map((c) =>
          App.el("option", { value: c }, App.t(c))));
      buttons.push(category, App.el("button", { type: "button", class: "primary", dataset: { action: "resolve" },
        onclick: () => LoopBoard.act(i.id, "resolve", { category: category.value }) }, App.t("resolve")));
    }
    bar.replaceChildren(...buttons);
  },

  async refer(e) {
    e.preventDefault();
    const f = e.target;
    await LoopBoard.act(LoopBoard.selected, "refer", { department: f.department.value, note: f.note.value });
    f.note.value = "";
  },

  async verify(e) {
    e.preventDefault();
    const passed = e.submitter ? e.submitter.value === "pass" : true;
    await LoopBoard.act(LoopBoard.selected, "verify", { passed, note: e.target.note.value });
    e.target.note.value = "";
  },
};

App.boot(() => LoopBoard.start());
