// Community admin screens: people, roster (代班), household risk files, devices, silences, rules.
"use strict";

Object.assign(I18N.zh, {
  admin_title: "社区管理", admin: "社区管理", admin_denied: "您的账号无权使用社区管理。",
  tab_people: "人员", tab_roster: "值班表", tab_households: "住户档案", tab_devices: "设备",
  tab_silences: "静默", tab_rules: "规则与派单", login_name: "账号", person_name: "姓名",
  role: "角色", phone: "电话", primary_grids: "负责网格", backup_grids: "备岗网格",
  initial_password: "初始密码", add_person: "添加人员", state: "状态", active: "在岗",
  inactive: "已停用", deactivate: "停用", activate: "启用", reset_password: "重置密码",
  new_password: "新密码（至少8位）", grid_worker: "网格员", building_leader: "楼栋长",
  duty_staff: "值班人员", secretary: "社区书记", prev_week: "上一周", next_week: "下一周",
  swap: "代班", swap_to: "由谁代班", cancel_swap: "取消代班", covered_by: "代班",
  weekdays: "一,二,三,四,五,六,日", add_household: "新建住户", unit: "单元", room: "房号",
  risk_tier: "风险等级", no_tier: "未评定", flags: "标记", elderly_alone: "独居老人",
  mobility_impaired: "行动不便", disabled_resident: "残疾人", no_activity_hours: "无活动报警（小时）",
  facts: "紧急情况须知", fact_mobility: "行动能力", fact_chronic_illness: "慢性病",
  fact_key_holder: "钥匙持有人", fact_language: "语言/方言", members: "家庭成员",
  add_member: "添加成员", contacts: "家属联系人", add_contact: "添加联系人", relation: "关系",
  save: "保存", saved: "已保存", visits: "走访记录", next_due: "下次走访", remove: "删除",
  device_id: "设备编号", device_type: "设备类型", location: "安装位置", register_device: "登记设备",
  ledger_file: "设备台账 CSV", preview: "预览", import: "导入", filter_devices: "按编号或位置筛选",
  smoke: "烟感", sos: "一键呼叫", gate: "门禁", charger: "充电桩", in_service: "在用",
  out_of_service: "已停用", move: "移位", replace: "更换", decommission: "报废",
  new_location: "新的安装位置", new_device_id: "新设备编号", row: "行", column: "列",
  problem: "问题", will_create: "新增", will_update: "更新", refused: "拒绝",
  preview_ok: "全部行可以导入", preview_bad: "有问题的行须先改正，导入前不会写入任何数据",
  imported: "已导入", device: "设备", building: "楼栋", grid: "网格", hours: "小时",
  silence_target: "设备编号/楼栋/网格编号", reason: "原因", create_silence: "开始静默",
  end_silence: "结束静默", until: "至", route_tester: "派单测试", who_is_paged: "谁会被通知",
  rules: "规则", rule: "规则", tunable: "可调参数（安全范围）", enabled: "启用", disabled: "停用",
  apply: "应用", step_at: "第 {n} 步", family: "家属", backup_worker: "备岗网格员",
  household: "住户", none_paged: "无人", history_of: "变更记录", buildings_led: "负责楼栋（楼栋长）",
  edit: "修改", save_person: "保存修改", add_slot: "新增每周班次", add: "添加", remove_slot: "删除班次",
  filter_households: "按楼栋、房号筛选", all_households: "全部住户", visit_notes: "走访情况",
  add_visit: "记录走访", overdue_visits: "走访逾期", visit_figures: "本月走访（每周目标）", unknown_grid: "没有这个网格",
  unknown_building: "没有这个楼栋", note_field: "备注", flags_field: "标记",
  "person.create": "新增人员", "person.update": "修改人员", "household.create": "新建住户",
  "household.update": "修改住户档案", "visit.create": "走访", "device.create": "登记设备",
  "device.update": "修改设备", "device.replaced": "被更换", "device.replacement": "替换旧设备",
  "device.decommission": "报废", "rule.tune": "调整规则", "rule.enable": "启用规则",
  "rule.disable": "停用规则", "roster_swap.create": "代班", "roster_swap.delete": "取消代班",
  enabled_field: "启用", active_field: "在岗", grids: "负责网格",
});
Object.assign(I18N.en, {
  admin_title: "Community admin", admin: "Admin", admin_denied: "Your account may not use the admin screens.",
  tab_people: "People", tab_roster: "Roster", tab_households: "Households", tab_devices: "Devices",
  tab_silences: "Silences", tab_rules: "Rules & routing", login_name: "Login name",
  person_name: "Name", role: "Role", phone: "Phone", primary_grids: "Grids (primary)",
  backup_grids: "Grids (backup)", initial_password: "Initial password", add_person: "Add person",
  state: "State", active: "Active", inactive: "Deactivated", deactivate: "Deactivate",
  activate: "Activate", reset_password: "Reset password", new_password: "New password (8+)",
  grid_worker: "Grid worker", building_leader: "Building leader", duty_staff: "Duty staff",
  secretary: "Secretary", prev_week: "Previous week", next_week: "Next week", swap: "Swap",
  swap_to: "Covered by", cancel_swap: "Cancel swap", covered_by: "covering",
  weekdays: "Mon,Tue,Wed,Thu,Fri,Sat,Sun", add_household: "New household", unit: "Unit",
  room: "Room", risk_tier: "Risk tier", no_tier: "Not assessed", flags: "Flags",
  elderly_alone: "Elderly living alone", mobility_impaired: "Limited mobility",
  disabled_resident: "Disabled resident", no_activity_hours: "No-activity alert (hours)",
  facts: "Emergency facts", fact_mobility: "Mobility", fact_chronic_illness: "Chronic illness",
  fact_key_holder: "Key holder", fact_language: "Language/dialect", members: "Members",
  add_member: "Add member", contacts: "Family contacts", add_contact: "Add contact",
  relation: "Relation", save: "Save", saved: "Saved", visits: "Visits", next_due: "Next visit",
  remove: "Remove", device_id: "Device ID", device_type: "Type", location: "Location",
  register_device: "Register device", ledger_file: "Device ledger CSV", preview: "Preview",
  import: "Import", filter_devices: "Filter by ID or location", smoke: "Smoke", sos: "Call button",
  gate: "Gate", charger: "Charger", in_service: "In service", out_of_service: "Out of service",
  move: "Move", replace: "Replace", decommission: "Decommission", new_location: "New location",
  new_device_id: "New device ID", row: "Row", column: "Column", problem: "Problem",
  will_create: "create", will_update: "update", refused: "refused",
  preview_ok: "Every row can be imported",
  preview_bad: "Fix the refused rows first; nothing is written before the import",
  imported: "Imported", device: "Device", building: "Building", grid: "Grid", hours: "hours",
  silence_target: "Device/building/grid ID", reason: "Reason", create_silence: "Start silence",
  end_silence: "End silence", until: "until", route_tester: "Route tester",
  who_is_paged: "Who is paged", rules: "Rules", rule: "Rule", tunable: "Tunable (safe range)",
  enabled: "Enabled", disabled: "Disabled", apply: "Apply", step_at: "Step {n}",
  family: "Family", backup_worker: "Backup worker", household: "Household", none_paged: "nobody", buildings_led: "Buildings (leaders)", edit: "Edit",
  save_person: "Save changes", add_slot: "New weekly slot", add: "Add", remove_slot: "Remove slot",
  history_of: "Changes", filter_households: "Filter by building or room",
  all_households: "All households", visit_figures: "Visits this month (weekly target)", visit_notes: "What you found", add_visit: "Record visit",
  overdue_visits: "Visits overdue", unknown_grid: "no such grid", unknown_building: "no such building",
  "person.create": "Person added", "person.update": "Person changed", "household.create": "Household added",
  "household.update": "Risk file changed", "visit.create": "Visit", "device.create": "Device registered",
  "device.update": "Device changed", "device.replaced": "Replaced", "device.replacement": "Replaces old device",
  "device.decommission": "Decommissioned", "rule.tune": "Rule tuned", "rule.enable": "Rule enabled",
  "rule.disable": "Rule disabled", "roster_swap.create": "Swap", "roster_swap.delete": "Swap cancelled",
  grids: "Grids",
});

const ADMIN_ROLES = ["admin", "secretary", "duty_staff"];
const ROLE_KEYS = ["grid_worker", "building_leader", "duty_staff", "secretary", "admin"];
const el = (...a) => App.el(...a);

const Admin = {
  site: null,
  tiers: [],
  buildings: [],
  gridNames: {},
  households: [],
  devices: [],
  people: [],
  weekStart: null,
  current: null,
  ledgerFile: null,

  async start(person) {
    if (!ADMIN_ROLES.includes(person.role)) {
      document.getElementById("denied").hidden = false;
      document.getElementById("tabs").hidden = true;
      return;
    }
    Admin.site = person.site;
    document.querySelectorAll("#tabs [data-tab]").forEach((b) =>
      b.addEventListener("click", () => Admin.show(b.dataset.tab)));
    Admin.wire();
    document.addEventListener("langchange", () => Admin.show(Admin.tab || "people"));
    try {
      let grids;
      [Admin.tiers, Admin.buildings, grids] = await Promise.all([
        App.api("/households/tiers"), App.api(`/buildings?site=${Admin.site}`), App.api(`/grids?site=${Admin.site}`),
      ]);
      Admin.gridNames = Object.fromEntries(grids.map((g) => [g.id, g.name]));
    } catch (err) { Admin.say(err.message, true); }
    Admin.show(location.hash.slice(1) || "people");
  },

  say(text, bad = false) {
    const n = document.getElementById("notice");
    n.textContent = text;
    n.className = bad ? "notice bad" : "notice";
  },

  async run(fn, okText) {
    try { const r = await fn(); if (okText) Admin.say(okText); return r; } catch (err) { Admin.say(err.message, true); return undefined; }
  },

  show(tab) {
    Admin.tab = tab;
    document.querySelectorAll("section.tab").forEach((s) => { s.hidden = s.id !== `tab-${tab}`; });
    document.querySelectorAll("#tabs [data-tab]").forEach((b) =>
      b.setAttribute("aria-selected", String(b.dataset.tab === tab)));
    const load = { people: Admin.loadPeople, roster: Admin.loadWeek, households: Admin.loadHouseholds,
      devices: Admin.loadDevices, silences: Admin.loadSilences, rules: Admin.loadRules }[tab];
    if (load) Admin.run(load);
  },

  // Fills a select; what was chosen stays chosen if it is still offered (lists are refilled
  // when data arrives, possibly after the person already picked something).
  options(select, items, blank) {
    const chosen = select.value;
    select.replaceChildren(...(blank !== undefined ? [el("option", { value: "" }, blank)] : []),
      ...items.map(([v, label]) => el("option", { value: v }, label)));
    if (chosen && items.some(([v]) => v === chosen)) select.value = chosen;
  },

  wire() {
    const roleSel = document.querySelector("#person-form [name=role]");
    Admin.options(roleSel, ROLE_KEYS.filter((r) => r !== "admin").map((r) => [r, App.t(r)]));
    document.getElementById("person-form").addEventListener("submit", Admin.addPerson);
    document.getElementById("person-cancel").addEventListener("click", Admin.endEdit);
    document.getElementById("weekly-form").addEventListener("submit", Admin.addSlot);
    document.getElementById("week-prev").addEventListener("click", () => Admin.moveWeek(-7));
    document.getElementById("week-next").addEventListener("click", () => Admin.moveWeek(7));
    document.getElementById("household-new").addEventListener("submit", Admin.addHousehold);
    document.getElementById("household-form").addEventListener("submit", Admin.saveHousehold);
    document.getElementById("add-contact").addEventListener("click", () => Admin.contactRow({}));
    document.getElementById("add-member").addEventListener("click", () => Admin.memberRow({}));
    document.querySelector("#household-form [name=risk_tier]").addEventListener("change", Admin.tierMeaning);
    document.getElementById("device-new").addEventListener("submit", Admin.registerDevice);
    document.querySelector("#device-new [name=building_id]").addEventListener("change", Admin.householdChoices);
    document.getElementById("ledger-form").addEventListener("submit", Admin.previewLedger);
    document.getElementById("ledger-import").addEventListener("click", Admin.importLedger);
    document.getElementById("device-filter").addEventListener("input", Admin.drawDevices);
    document.getElementById("household-filter").addEventListener("input", Admin.drawHouseholds);
    document.getElementById("household-all").addEventListener("change", Admin.drawHouseholds);
    document.getElementById("add-visit").addEventListener("click", Admin.addVisit);
    document.getElementById("silence-form").addEventListener("submit", Admin.createSilence);
    document.getElementById("route-form").addEventListener("submit", Admin.routeTest);
  },

  grids: (text) => text.split(/[,，\s]+/).filter(Boolean).map((g) => (g.includes(".") ? g : `${Admin.site}.${g}`)),

  // --- people -------------------------------------------------------------------------------
  async loadPeople() {
    Admin.people = await App.api(`/people?site=${Admin.site}`);
    document.getElementById("people").replaceChildren(...Admin.people.map((p) => el("tr", { dataset: { id: p.id } },
      el("td", {}, `${p.name} (${p.id})`), el("td", {}, App.t(p.role)), el("td", {}, p.phone),
      el("td", {}, p.grids.join(" ")), el("td", {}, p.backup_grids.join(" ")),
      el("td", {}, App.t(p.active ? "active" : "inactive")),
      el("td", { class: "actions" },
        el("button", { type: "button", class: "edit-person", onclick: () => Admin.editPerson(p) }, App.t("edit")),
        el("button", { type: "button", class: "toggle-active", onclick: () => Admin.setActive(p, !p.active) },
          App.t(p.active ? "deactivate" : "activate")),
        el("button", { type: "button", onclick: () => Admin.resetPassword(p) }, App.t("reset_password"))))));
  },

  editing: null,

  editPerson(p) {
    const f = document.getElementById("person-form");
    Admin.editing = p.id;
    f.id.value = p.id;
    f.id.readOnly = true;
    f.name.value = p.name;
    f.role.value = p.role;
    f.phone.value = p.phone;
    const short = (ids) => ids.map((g) => g.split(".").pop()).join(" ");
    f.grids.value = short(p.grids);
    f.backup_grids.value = short(p.backup_grids);
    f.buildings.value = short(p.buildings);
    document.getElementById("person-submit").textContent = App.t("save_person");
    document.getElementById("person-cancel").hidden = false;
  },

  endEdit() {
    const f = document.getElementById("person-form");
    Admin.editing = null;
    f.reset();
    f.id.readOnly = false;
    document.getElementById("person-submit").textContent = App.t("add_person");
    document.getElementById("person-cancel").hidden = true;
  },

  async addPerson(e) {
    e.preventDefault();
    const f = e.target;
    const phone = f.phone.value.trim();
    const body = { name: f.name.value.trim(), role: f.role.value, phone,
      grids: Admin.grids(f.grids.value), backup_grids: Admin.grids(f.backup_grids.value),
      buildings: Admin.grids(f.buildings.value) };
    const old = Admin.people.find((p) => p.id === Admin.editing);
    // the SMS channel follows the phone number; other channels stay as they were
    body.channels = { ...(old ? old.channels : { mqtt: true }), ...(phone ? { sms: phone } : {}) };
    if (!phone) delete body.channels.sms;
    if (f.password.value && !old) body.password = f.password.value;
    const call = old
      ? () => App.api(`/people/${old.id}`, { method: "PATCH", json: body })
      : () => App.api("/people", { method: "POST", json: { ...body, id: f.id.value.trim(), site: Admin.site } });
    if (await Admin.run(call, App.t("saved"))) {
      Admin.endEdit();
      await Admin.loadPeople();
    }
  },

  async setActive(p, active) {
    await Admin.run(() => App.api(`/people/${p.id}`, { method: "PATCH", json: { active } }), App.t("saved"));
    await Admin.loadPeople();
  },

  async resetPassword(p) {
    const pw = window.prompt(`${App.t("new_password")}: ${p.name}`);
    if (pw) await Admin.run(() => App.api(`/people/${p.id}/password`, { method: "PUT", json: { new_password: pw } }), App.t("saved"));
  },

  // --- roster -------------------------------------------------------------------------------
  moveWeek(days) {
    const d = new Date(`${Admin.weekStart}T00:00:00`);
    d.setDate(d.getDate() + days);
    Admin.weekStart = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
    Admin.run(Admin.loadWeek);
  },

  async loadWeek() {
    const q = Admin.weekStart ? `&start=${Admin.weekStart}` : "";
    const [week, people] = await Promise.all([
      App.api(`/roster/week?site=${Admin.site}${q}`), App.api(`/people?site=${Admin.site}`)]);
    Admin.weekStart = week.start;
    document.getElementById("week-label").textContent = `${week.days[0].date} – ${week.days[6].date}`;
    const names = App.t("weekdays").split(",");
    const staff = people.filter((p) => p.active && ["duty_staff", "secretary"].includes(p.role));
    const wf = document.getElementById("weekly-form");
    Admin.options(wf.person_id, staff.map((p) => [p.id, p.name]));
    Admin.options(wf.weekday, names.map((n, i) => [String(i), n]));
    document.getElementById("week").replaceChildren(...week.days.map((day) => el("div", { class: "day", dataset: { date: day.date } },
      el("h3", {}, `${names[day.weekday]} ${day.date.slice(5)}`),
      ...day.slots.map((s) => Admin.slotCard(day, s, staff)))));
  },

  slotCard(day, s, staff) {
    const card = el("div", { class: s.covered_by ? "slot swapped" : "slot", dataset: { person: s.person_id, start: s.start } },
      el("div", { class: "slot-time" }, `${s.start}–${s.end}`),
      el("div", { class: "slot-who" }, s.covered_by ? `${s.covered_by.name}（${App.t("covered_by")} ${s.name}）` : s.name));
    if (s.kind !== "weekly") return card;
    card.append(el("button", { type: "button", class: "remove-slot", "aria-label": App.t("remove_slot"), onclick: () =>
      window.confirm(`${App.t("remove_slot")} ${s.name} ${s.start}–${s.end}?`) && Admin.run(async () => {
        await App.api(`/roster/weekly/${s.weekly_id}`, { method: "DELETE" });
        await Admin.loadWeek();
      }, App.t("saved")) }, "×"));
    if (s.covered_by) {
      card.append(el("button", { type: "button", class: "cancel-swap", onclick: () =>
        Admin.run(async () => { await App.api(`/roster/swaps/${s.covered_by.swap_id}`, { method: "DELETE" }); await Admin.loadWeek(); }) },
      App.t("cancel_swap")));
      return card;
    }
    const select = el("select", { class: "swap-to", "aria-label": App.t("swap_to") });
    Admin.options(select, staff.filter((p) => p.id !== s.person_id).map((p) => [p.id, p.name]), App.t("swap_to"));
    card.append(el("div", { class: "swap" }, select, el("button", { type: "button", class: "do-swap", onclick: () =>
      select.value && Admin.run(async () => {
        await App.api("/roster/swaps", { method: "POST", json: { site: Admin.site, weekly_id: s.weekly_id, date: day.date, to_person: select.value } });
        await Admin.loadWeek();
      }, App.t("saved")) }, App.t("swap"))));
    return card;
  },

  async addSlot(e) {
    e.preventDefault();
    const f = e.target;
    const body = { site: Admin.site, person_id: f.person_id.value, weekday: Number(f.weekday.value),
      start: f.start.value, end: f.end.value };
    if (await Admin.run(() => App.api("/roster/weekly", { method: "POST", json: body }), App.t("saved"))) {
      await Admin.loadWeek();
    }
  },

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
};

App.boot(Admin.start);
