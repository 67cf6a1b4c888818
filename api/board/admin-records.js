// Community admin screens, part two: household risk files, devices, silences, rules
// (methods of the Admin object of admin.js).
"use strict";

Object.assign(Admin, {
  // --- households ---------------------------------------------------------------------------
  tierName(key) {
    const t = Admin.tiers.find((x) => x.key === key);
    return t ? (App.lang === "en" && t.name_en ? t.name_en : t.name) : App.t("no_tier");
  },

  async loadHouseholds() {
    Admin.options(document.querySelector("#household-new [name=building_id]"),
      Admin.buildings.map((b) => [b.id, b.name]));
    Admin.options(document.querySelector("#household-form [name=risk_tier]"),
      Admin.tiers.map((t) => [t.key, Admin.tierName(t.key)]), App.t("no_tier"));
    const [households, overdue] = await Promise.all([
      App.api(`/households?site=${Admin.site}`), App.api(`/visits/overdue?site=${Admin.site}`)]);
    Admin.households = households;
    const now = new Date();
    const month = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, "0")}`;
    const fig = await App.api(`/visits/figures?site=${Admin.site}&month=${month}`);
    const weeks = fig.workers.length ? fig.workers[0].weeks.map((w) => w.week) : [];
    document.getElementById("visit-table").replaceChildren(
      el("tr", {}, el("th", {}, App.t("person_name")), ...weeks.map((w) => el("th", {}, w.slice(5))), el("th", {}, `≥${fig.weekly_target}`)),
      ...fig.workers.map((w) => el("tr", {}, el("td", {}, w.name),
        ...w.weeks.map((x) => el("td", { class: x.met ? "ok" : "bad" }, String(x.visits))), el("td", {}, String(w.visits)))));
    document.getElementById("overdue").textContent = overdue.grids.length
      ? `${App.t("overdue_visits")}：${overdue.grids.map((g) => `${Admin.gridNames[g.grid_id] || g.grid_id} ${g.overdue}`).join("，")}` : "";
    Admin.drawHouseholds();
    if (Admin.current) {
      const again = Admin.households.find((h) => h.id === Admin.current);
      if (again) Admin.edit(again);
    }
  },

  drawHouseholds() {
    const byId = Object.fromEntries(Admin.buildings.map((b) => [b.id, b.name]));
    const q = document.getElementById("household-filter").value.trim();
    const all = document.getElementById("household-all").checked;
    const label = (h) => `${byId[h.building_id] || h.building_id} ${h.unit ? `${h.unit}-` : ""}${h.room}`;
    const shown = Admin.households.filter((h) => (q ? `${label(h)} ${h.id}`.includes(q)
      : all || h.flags.length || h.risk_tier || h.contacts.length || h.id === Admin.current));
    document.getElementById("households").replaceChildren(...shown.map((h) => el("li", {
      class: `household tier-${h.risk_tier || "none"}`, dataset: { id: h.id }, onclick: () => Admin.edit(h) },
    el("span", { class: `tier-badge tier-${h.risk_tier || "none"}` }, Admin.tierName(h.risk_tier)),
    ` ${label(h)} `,
    el("span", { class: "muted" }, h.flags.map((f) => App.t(f)).join("、")))));
  },

  async addHousehold(e) {
    e.preventDefault();
    const f = e.target;
    const body = { site: Admin.site, building_id: f.building_id.value, unit: f.unit.value.trim(), room: f.room.value.trim() };
    const h = await Admin.run(() => App.api("/households", { method: "POST", json: body }), App.t("saved"));
    if (h) { Admin.current = h.id; f.reset(); await Admin.loadHouseholds(); }
  },

  contactRow(c) {
    document.getElementById("contacts").append(el("div", { class: "contact" },
      el("input", { name: "c_name", value: c.name || "", placeholder: App.t("person_name") }),
      el("input", { name: "c_relation", value: c.relation || "", placeholder: App.t("relation"), size: "6" }),
      el("input", { name: "c_phone", value: c.phone || "", placeholder: App.t("phone") }),
      el("button", { type: "button", onclick: (e) => e.target.parentElement.remove() }, App.t("remove"))));
  },

  memberRow(m) {
    document.getElementById("members").append(el("div", { class: "member" },
      el("input", { name: "m_name", value: m.name || "", placeholder: App.t("person_name") }),
      el("input", { name: "m_note", value: m.note || "", placeholder: App.t("note") }),
      el("button", { type: "button", onclick: (e) => e.target.parentElement.remove() }, App.t("remove"))));
  },

  tierMeaning() {
    const key = document.querySelector("#household-form [name=risk_tier]").value;
    const t = Admin.tiers.find((x) => x.key === key);
    document.getElementById("tier-meaning").textContent = t ? t.meaning : "";
  },

  async edit(h) {
    Admin.current = h.id;
    const f = document.getElementById("household-form");
    const wasHidden = f.hidden;
    f.hidden = false;
    if (wasHidden && window.innerWidth < 800) f.scrollIntoView();
    document.querySelectorAll("#households li").forEach((li) => li.classList.toggle("selected", li.dataset.id === h.id));
    const building = Admin.buildings.find((b) => b.id === h.building_id);
    document.getElementById("household-title").textContent =
      `${building ? building.name : h.building_id} ${h.unit ? `${h.unit}${App.lang === "en" ? "-" : "单元"}` : ""}${h.room}`;
    document.getElementById("household-title").dataset.id = h.id;
    f.risk_tier.value = h.risk_tier || "";
    Admin.tierMeaning();
    f.querySelectorAll("[name=flag]").forEach((c) => { c.checked = h.flags.includes(c.value); });
    f.no_activity_hours.value = h.no_activity_hours ?? "";
    for (const k of ["mobility", "chronic_illness", "key_holder", "language"]) f[`fact_${k}`].value = (h.facts || {})[k] || "";
    f.note.value = h.note || "";
    document.getElementById("contacts").replaceChildren();
    (h.contacts || []).forEach(Admin.contactRow);
    document.getElementById("members").replaceChildren();
    (h.members || []).forEach(Admin.memberRow);
    const [visits, history] = await Promise.all([
      App.api(`/households/${encodeURIComponent(h.id)}/visits`), App.api(`/history/household/${encodeURIComponent(h.id)}`)]);
    document.getElementById("visits").replaceChildren(...visits.map((v) => el("li", {},
      `${v.visited_on} ${v.visitor}：${v.notes}（${App.t("next_due")} ${v.next_due || "-"}）`)));
    Admin.drawHistory("household-history", history);
  },

  // One line per change: when, who, what, and each changed field as "old → new".
  drawHistory(id, rows) {
    const name = (k) => { const t = App.t(k); return t === k && I18N.zh[`${k}_field`] ? App.t(`${k}_field`) : t; };
    const show = (v) => {
      if (v === null || v === undefined || v === "") return "—";
      if (Array.isArray(v)) return v.map((x) => (typeof x === "object" ? Object.values(x).filter(Boolean).join(" ") : App.t(x))).join("、") || "—";
      if (typeof v === "object") return Object.entries(v).map(([k, x]) => `${App.t(`fact_${k}`)}:${x}`).join("；") || "—";
      if (typeof v === "boolean") return v ? "✓" : "✗";
      return App.t(String(v));
    };
    document.getElementById(id).replaceChildren(...rows.map((r) => {
      const d = r.detail || {};
      const after = d.after || {};
      const before = d.before || {};
      const changed = Object.keys(after).filter((k) => JSON.stringify(after[k]) !== JSON.stringify(before[k]));
      const fields = d.before !== undefined
        ? changed.map((k) => {
          const fmt = k === "risk_tier" ? (v) => (v ? Admin.tierName(v) : "—") : show;
          return el("div", { class: "hist-field" }, `${name(k)}：${fmt(before[k])} → ${fmt(after[k])}`);
        })
        : [];
      return el("li", {}, `${App.time(r.at_ms)} ${r.actor} ${App.t(r.action)}`, ...fields);
    }));
  },

  async addVisit() {
    const form = document.getElementById("visit-form");
    const day = form.querySelector("[name=visited_on]").value;
    if (!day) return;
    const body = { visited_on: day, notes: form.querySelector("[name=visit_notes]").value.trim() };
    if (await Admin.run(() => App.api(`/households/${encodeURIComponent(Admin.current)}/visits`, { method: "POST", json: body }), App.t("saved"))) {
      form.querySelector("[name=visit_notes]").value = "";
      await Admin.loadHouseholds();
    }
  },

  async saveHousehold(e) {
    e.preventDefault();
    const f = e.target;
    const facts = {};
    for (const k of ["mobility", "chronic_illness", "key_holder", "language"]) {
      const v = f[`fact_${k}`].value.trim();
      if (v) facts[k] = v;
    }
    const contacts = [...document.querySelectorAll("#contacts .contact")].map((r) => ({
      name: r.querySelector("[name=c_name]").value.trim(), relation: r.querySelector("[name=c_relation]").value.trim(),
      phone: r.querySelector("[name=c_phone]").value.trim() })).filter((c) => c.name || c.phone);
    const members = [...document.querySelectorAll("#members .member")].map((r) => ({
      name: r.querySelector("[name=m_name]").value.trim(), note: r.querySelector("[name=m_note]").value.trim() })).filter((m) => m.name);
    const hours = f.no_activity_hours.value;
    const body = { risk_tier: f.risk_tier.value || null, flags: [...f.querySelectorAll("[name=flag]:checked")].map((c) => c.value),
      facts, contacts, members, note: f.note.value.trim(), no_activity_hours: hours ? Number(hours) : null };
    if (await Admin.run(() => App.api(`/households/${encodeURIComponent(Admin.current)}`, { method: "PATCH", json: body }), App.t("saved"))) {
      await Admin.loadHouseholds();
    }
  },

  // --- devices ------------------------------------------------------------------------------
  async loadDevices() {
    const f = document.getElementById("device-new");
    Admin.options(f.device_type, ["smoke", "sos", "gate", "charger"].map((t) => [t, App.t(t)]));
    Admin.options(f.building_id, Admin.buildings.map((b) => [b.id, b.name]));
    [Admin.devices, Admin.households] = await Promise.all([
      App.api(`/devices?site=${Admin.site}`), App.api(`/households?site=${Admin.site}`)]);
    Admin.householdChoices();
    Admin.drawDevices();
  },

  householdChoices() {
    const f = document.getElementById("device-new");
    Admin.options(f.household_id, Admin.households.filter((h) => h.building_id === f.building_id.value)
      .map((h) => [h.id, `${h.unit ? `${h.unit}-` : ""}${h.room}`]), `— ${App.t("household")} —`);
  },

  drawDevices() {
    const q = document.getElementById("device-filter").value.trim();
    const rows = Admin.devices.filter((d) => !q || d.device_id.includes(q) || d.location.includes(q)).slice(0, 60);
    document.getElementById("devices").replaceChildren(...rows.map((d) => el("tr", { dataset: { id: d.device_id } },
      el("td", {}, d.device_id), el("td", {}, App.t(d.device_type)), el("td", {}, d.location),
      el("td", {}, App.t(d.enabled ? "in_service" : "out_of_service")),
      el("td", { class: "actions" },
        el("button", { type: "button", onclick: () => Admin.deviceAction(d, "move") }, App.t("move")),
        el("button", { type: "button", onclick: () => Admin.deviceAction(d, "replace") }, App.t("replace")),
        el("button", { type: "button", onclick: () => Admin.deviceAction(d, "decommission") }, App.t("decommission")),
        el("button", { type: "button", onclick: () => Admin.deviceHistory(d) }, App.t("history_of"))))));
  },

  async deviceAction(d, what) {
    const base = `/devices/${Admin.site}/${encodeURIComponent(d.device_id)}`;
    let call;
    if (what === "move") {
      const loc = window.prompt(App.t("new_location"), d.location);
      if (!loc) return;
      call = () => App.api(base, { method: "PATCH", json: { location: loc } });
    } else if (what === "replace") {
      const id = window.prompt(App.t("new_device_id"));
      if (!id) return;
      call = () => App.api(`${base}/replace`, { method: "POST", json: { new_device_id: id } });
    } else {
      if (!window.confirm(`${App.t("decommission")} ${d.device_id}?`)) return;
      call = () => App.api(`${base}/decommission`, { method: "POST", json: {} });
    }
    if (await Admin.run(call, App.t("saved"))) await Admin.loadDevices();
  },

  async deviceHistory(d) {
    Admin.drawHistory("device-history", await App.api(`/history/device/${encodeURIComponent(d.device_id)}?site=${Admin.site}`));
  },

  async registerDevice(e) {
    e.preventDefault();
    const f = e.target;
    const b = Admin.buildings.find((x) => x.id === f.building_id.value);
    const body = { site: Admin.site, device_id: f.device_id.value.trim(), device_type: f.device_type.value,
      grid_id: b.grid_id, building_id: b.id, household_id: f.household_id.value || null, location: f.location.value.trim() };
    if (await Admin.run(() => App.api("/devices", { method: "POST", json: body }), App.t("saved"))) {
      f.device_id.value = "";
      await Admin.loadDevices();
    }
  },

  async upload(path) {
    const data = new FormData();
    data.append("file", Admin.ledgerFile);
    return App.api(`${path}?site=${Admin.site}`, { method: "POST", body: data });
  },

  async previewLedger(e) {
    e.preventDefault();
    Admin.ledgerFile = e.target.file.files[0];
    const p = await Admin.run(() => Admin.upload("/devices/ledger.csv/preview"));
    if (!p) return;
    document.getElementById("ledger-import").disabled = !p.ok;
    const label = { create: "will_create", update: "will_update", refused: "refused" };
    document.getElementById("ledger-preview").replaceChildren(
      el("p", { class: p.ok ? "ok" : "bad", id: "preview-summary" }, App.t(p.ok ? "preview_ok" : "preview_bad")),
      el("table", {}, el("thead", {}, el("tr", {}, ...["row", "device_id", "state", "column", "problem"].map((k) => el("th", {}, App.t(k))))),
        el("tbody", {}, ...p.rows.map((r) => el("tr", { class: `preview-${r.action}`, dataset: { row: String(r.row) } },
          el("td", {}, String(r.row)), el("td", {}, r.device_id || ""), el("td", {}, App.t(label[r.action])),
          el("td", { class: "problem-column" }, r.problems.map((x) => x.column).join("、")),
          el("td", {}, r.problems.map((x) => Admin.problem(x.message)).join("；")))))));
  },

  // The importer's messages are English; the common ones are said in the page's language.
  problem(message) {
    const m = /^unknown (grid|building) '(.*)'$/.exec(message);
    return m ? `${App.t(`unknown_${m[1]}`)}：${m[2]}` : message;
  },

  async importLedger() {
    const r = await Admin.run(() => Admin.upload("/devices/ledger.csv"));
    if (r) { Admin.say(`${App.t("imported")}: +${r.created} / ${r.updated}`); await Admin.loadDevices(); }
  },

  // --- silences -----------------------------------------------------------------------------
  async loadSilences() {
    const rows = await App.api("/silences");
    document.getElementById("silences").replaceChildren(...rows.map((s) => el("li", { class: "silence", dataset: { id: String(s.id) } },
      `${App.t(s.matcher)} ${s.value} — ${s.reason} (${App.t("until")} ${App.time(s.ends_at_ms)}) `,
      el("button", { type: "button", class: "end-silence", onclick: () => Admin.run(async () => {
        await App.api(`/silences/${s.id}`, { method: "DELETE" });
        await Admin.loadSilences();
      }, App.t("saved")) }, App.t("end_silence")))));
  },

  async createSilence(e) {
    e.preventDefault();
    const f = e.target;
    let value = f.value.value.trim();
    if (f.matcher.value !== "device" && !value.includes(".")) value = `${Admin.site}.${value}`;
    const body = { site: Admin.site, matcher: f.matcher.value, value, duration_s: Number(f.hours.value) * 3600, reason: f.reason.value.trim() };
    if (await Admin.run(() => App.api("/silences", { method: "POST", json: body }), App.t("saved"))) {
      f.reset();
      await Admin.loadSilences();
    }
  },

  // --- rules --------------------------------------------------------------------------------
  async loadRules() {
    const rules = await App.api("/rules");
    document.getElementById("rules").replaceChildren(...rules.map((r) => {
      const tunables = Object.entries(r.bounds || {}).map(([name, [lo, hi]]) => {
        const input = el("input", { name, value: String(r[name]), size: "6", "aria-label": name });
        input.disabled = !["admin", "secretary"].includes(App.person.role);
        return el("span", { class: "tunable" }, `${name} `, input, ` [${lo}–${hi}] `,
          el("button", { type: "button", class: "apply-param", onclick: () => Admin.run(async () => {
            const raw = input.value.trim();
            const v = /^[0-9.]+$/.test(raw) ? Number(raw) : raw;
            await App.api(`/rules/${r.id}/params`, { method: "PUT", json: { params: { [name]: v } } });
            await Admin.loadRules();
          }, App.t("saved")) }, App.t("apply")));
      });
      const toggle = el("button", { type: "button", class: "rule-toggle", onclick: () => Admin.run(async () => {
        await App.api(`/rules/${r.id}/enabled`, { method: "PUT", json: { enabled: !r.enabled } });
        await Admin.loadRules();
      }, App.t("saved")) }, App.t(r.enabled ? "enabled" : "disabled"));
      toggle.disabled = App.person.role !== "admin";  // the server allows admins only
      return el("tr", { dataset: { id: r.id } }, el("td", {}, App.lang === "en" && r.title_en ? r.title_en : r.title,
        el("div", { class: "muted" }, r.id)), el("td", {}, toggle), el("td", {}, ...tunables));
    }));
  },

  async routeTest(e) {
    e.preventDefault();
    const f = e.target;
    const r = await Admin.run(() => App.api("/rules/route-test", { method: "POST",
      json: { site: Admin.site, device_id: f.device_id.value.trim(), severity: f.severity.value } }));
    if (!r) return;
    document.getElementById("route-result").replaceChildren(...r.steps.map((s, i) => el("li", { class: "route-step" },
      el("b", {}, `${App.t("step_at").replace("{n}", i + 1)} ${App.time(s.at_ms)}：`),
      s.recipients.length ? s.recipients.map((p) => el("span", { class: "paged", dataset: { person: p.person_id } },
        `${p.name || p.person_id}（${App.t(p.role)}）`)) : App.t("none_paged"))));
  },
});

App.boot(Admin.start);
