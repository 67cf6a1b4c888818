// The grid worker on the stairs: arrive, photograph, resolve; hazard steps. Phone first.
"use strict";

const Field = {
  async start() {
    await Field.reportForm();
    document.addEventListener("langchange", Field.refresh);
    await Field.refresh();
    setInterval(() => Field.refresh().catch(() => {}), 15000);
  },

  // 网格员巡查: a hazard found on the rounds, with its deadline and who must rectify it.
  async reportForm() {
    const f = document.getElementById("report-form");
    const [grids, buildings] = await Promise.all([App.api("/grids?limit=500"), App.api("/buildings?limit=500")]);
    const list = (x) => (Array.isArray(x) ? x : x.data || []);
    f.grid_id.replaceChildren(...list(grids).map((g) => App.el("option", { value: g.id }, g.name)));
    const fill = () => f.building_id.replaceChildren(App.el("option", { value: "" }, "-"),
      ...list(buildings).filter((b) => b.grid_id === f.grid_id.value).map((b) => App.el("option", { value: b.id }, b.name)));
    f.grid_id.addEventListener("change", fill);
    fill();
    f.addEventListener("submit", async (e) => {
      e.preventDefault();
      const msg = document.getElementById("field-msg");
      try {
        const incident = await App.api("/incidents", { method: "POST", json: {
          source: "patrol", category: f.category.value, grid_id: f.grid_id.value,
          building_id: f.building_id.value || null, unit_room: f.unit_room.value, description: f.description.value,
          severity: "minor", hazard: true, deadline_ms: new Date(`${f.deadline.value}T18:00`).getTime(),
          responsible_kind: f.responsible_kind.value } });
        if (f.photo.files[0]) await Loop.upload(incident.id, f.photo.files[0]);
        Loop.msg(msg, `${App.t("saved")} #${incident.id}`);
        f.reset();
        document.getElementById("report").open = false;
        await Field.refresh();
      } catch (err) { Loop.msg(msg, err.message, true); }
    });
  },

  async refresh() {
    const open = await App.api("/incidents?status=open&status=acknowledged&limit=50");
    const ul = document.getElementById("field-list");
    const items = await Promise.all(open.data.map(Field.item));
    ul.replaceChildren(...(items.length ? items : [App.el("li", { class: "empty" }, App.t("no_items"))]));
  },

  async item(i) {
    const c = await App.api(`/incidents/${i.id}/case`);
    const act = (key, action, body) => App.el("button", { type: "button", dataset: { action },
      onclick: () => Field.act(i.id, action, body) }, App.t(key));
    const buttons = [];
    if (!c.arrived_at_ms) buttons.push(act("arrive", "arrive", {}));
    if (c.hazard) {
      const next = { reported: "notice", notice: "rectifying", rectifying: "reinspect", overdue: "rectifying",
        reinspected: "rectified" }[c.hazard_state];
      if (next === "reinspect") {
        buttons.push(App.el("label", { class: "button" }, App.t("reinspect"),
          App.el("input", { type: "file", accept: "image/jpeg,image/png", capture: "environment",
            onchange: (e) => Field.reinspect(i.id, e.target.files[0]) })));
      } else if (next) buttons.push(act(next, "hazard", { step: next }));
    }
    buttons.push(App.el("button", { type: "button", dataset: { action: "comment" }, onclick: () => {
      const note = prompt(App.t("note"));
      if (note) Field.act(i.id, "comment", { note });
    } }, App.t("comment")));
    buttons.push(App.el("button", { type: "button", class: "primary", dataset: { action: "resolve" },
      onclick: () => Field.resolve(i.id) }, App.t("resolve_with_photo")));
    const due = c.hazard && c.deadline_ms ? App.el("div", { class: c.hazard_state === "overdue" ? "overdue" : "state" },
      `${App.t("due")} ${App.time(c.deadline_ms)} · ${App.t(c.hazard_state)}`) : "";
    return App.el("li", { class: `incident sev-${i.severity} status-${i.status}`, dataset: { id: i.id } },
      App.el("div", {}, App.el("div", { class: "title" }, App.title(i)),
        App.el("div", { class: "meta" }, `#${i.id} · ${i.location || i.grid_id} · ${App.time(i.opened_at_ms)}`),
        c.description ? App.el("div", {}, c.description) : "", due, await Loop.thumbs(i.id, c.photos)),
      App.el("div", { class: "actions" }, buttons));
  },

  async act(id, action, body) {
    const msg = document.getElementById("field-msg");
    try {
      await App.api(`/incidents/${id}/${action}`, { method: "POST", json: body });
      Loop.msg(msg, App.t("saved"));
      await Field.refresh();
    } catch (err) { Loop.msg(msg, err.message, true); }
  },

  async reinspect(id, file) {
    if (!file) return;
    const photo = await Loop.upload(id, file);
    await Field.act(id, "hazard", { step: "reinspect", photo_ids: [photo] });
  },

  resolve(id) {
    const dialog = document.getElementById("resolve-dialog");
    const form = document.getElementById("field-resolve");
    form.reset();
    const label = form.photo.closest("label").querySelector("span");
    label.textContent = App.t("take_photo");
    form.photo.onchange = () => {
      if (form.photo.files[0]) label.textContent = `${App.t("photo_chosen")} ✓ ${form.photo.files[0].name}`;
    };
    dialog.onclose = async () => {
      if (dialog.returnValue !== "ok") return;
      const msg = document.getElementById("field-msg");
      try {
        if (form.photo.files[0]) await Loop.upload(id, form.photo.files[0]);
        await Field.act(id, "resolve", { category: form.category.value, note: form.note.value });
      } catch (err) { Loop.msg(msg, err.message, true); }
    };
    dialog.showModal();
  },
};

App.boot(() => Field.start());
