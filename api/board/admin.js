// Community admin screens: people, roster (代班), household risk files, devices, silences, rules.
// This part: words, the page's frame, people and the roster; admin-records.js the rest.
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
};
