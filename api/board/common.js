// Shared by the duty board, the worker view and the reports page: i18n, auth, API calls, live events.
"use strict";

const I18N = {
  zh: {
    title: "社区安全值班台", worker_title: "我的事件", reports_title: "月度台账",
    login: "登录", username: "账号", password: "密码", logout: "退出", login_failed: "账号或密码错误",
    login_limited: "尝试次数过多，请 {s} 秒后再试",
    open_incidents: "未结事件", unacked: "待确认", offline_devices: "离线设备", critical: "紧急",
    mute: "静音", unmute: "取消静音", acknowledge: "确认", assign: "指派", resolve: "办结",
    arrive: "到场", reopen: "重新打开", comment: "备注", escalate: "上报",
    timeline: "处置记录", overview: "网格概览", devices: "设备", offline: "离线",
    no_incidents: "暂无事件", history: "历史记录", my_open: "待处理", note: "备注",
    category: "办结类别", assignee: "指派给", cancel: "取消", submit: "提交",
    real_emergency: "真实警情", false_alarm: "误报", device_test: "设备测试", device_fault: "设备故障",
    open: "待确认", acknowledged: "处置中", resolved: "已办结", closed: "已关闭",
    major: "重要", minor: "一般", info: "提示",
    live_on: "实时连接", live_off: "连接中断，正在重连…",
    month: "月份", download_csv: "下载 CSV", incidents_by_month: "每月事件数",
    ack_minutes: "平均确认用时（分钟）", resolution_rate: "办结率", within_deadline: "按时处置率",
    opened_at: "发生时间", where: "地点", what: "事件", handled_by: "处置人", ack_time: "确认用时",
    resolve_time: "办结用时", resolution: "处置结果", status: "状态", reports: "台账", board: "值班台", loop_link: "闭环处置", field_link: "现场处置", ledger_link: "问题台账",
    lang: "English",
    open_for: "已持续 {d}", ack_within: "确认倒计时 {d}", overdue: "已超时 {d}", escalated_n: "已升级 {n} 级",
    acked_by: "已确认：{who}", assigned_to: "指派给：{who}", assigned_to_me: "指派给我",
    arrived_at: "已到场 {t}", paged: "已通知", delivered: "已送达", sending: "发送中",
    failed: "未送达", no_channel: "未送达（无可用通知渠道）", system: "系统",
    unacked_short: "待确认", open_short: "未结", online: "在线", devices_n: "{n} 台设备",
    no_report_access: "无权查看台账：台账只对书记、值班员和管理员开放。",
    load_failed: "加载失败：{e}", empty_month: "本月没有记录",
    d_s: "{s}秒", d_ms: "{m}分{s}秒", d_m: "{m}分钟", d_hm: "{h}小时{m}分钟", d_dh: "{d}天{h}小时",
    role_grid_worker: "网格员", role_backup_worker: "后备网格员", role_building_leader: "楼栋长",
    role_duty_staff: "值班员", role_secretary: "书记", role_family: "家属", role_admin: "管理员",
    role_street_office: "街道", sites_title: "辖区社区", site_filter: "社区", all_sites: "全部社区",
    site_devices: "设备 {n} 台：在线 {on} / 离线 {off} / 未上报 {unknown}", site_open: "未结 {n}", site_unacked: "待确认 {n}",
    site_overdue: "超时 {n}", site_rectified: "本月整改完成率 {r}", site_no_hazards: "本月无隐患",
    site_open_board: "进入该社区值班台", site_current: "当前查看", pick_site: "请选择社区：",
    ev_opened: "报警触发", ev_repeated: "再次报警", ev_notified: "已通知", ev_escalated: "升级通知",
    ev_escalated_manually: "人工上报", ev_escalating: "无人可达，立即通知下一级",
    ev_acknowledged: "确认", ev_assigned: "指派", ev_commented: "备注", ev_arrived: "到场",
    ev_resolved: "办结", ev_closed: "关闭", ev_reopened: "重新打开", ev_referred: "转交部门",
    ev_alert_cleared: "报警已解除，待人工办结", ev_auto_resolved: "报警解除，自动办结",
    ev_reminded: "提醒处置人", ev_household_informed: "已告知家属处置结果",
    ev_delivery_failed: "通知未送达", ev_ladder_exhausted: "通知名单已用完",
    ev_silenced: "静默期内，暂不通知", ev_suppressed: "静默期内，暂不通知",
    ev_not_paged: "静默期内报警已解除，未通知", ev_recorded: "仅记录，不通知",
    ev_merged: "并入楼栋断电事件", ev_device_attached: "设备并入", ev_device_cleared: "设备恢复",
    ev_action: "联动动作已执行", ev_action_failed: "联动动作失败",
    ev_command_held: "设备命令限速排队", ev_command_sent: "设备命令已发送", ev_command_acked: "设备回执",
    ev_command_refused: "设备拒绝执行", ev_command_retry: "重发设备命令", ev_command_confirmed: "设备已确认",
    ev_command_failed: "设备命令未确认", ev_command_superseded: "设备命令被取代",
    dept_fire_119: "消防 119", dept_police_110: "公安 110", dept_ambulance_120: "急救 120",
    dept_property_management: "物业",
  },
  en: {
    title: "Community safety duty board", worker_title: "My incidents", reports_title: "Monthly ledger",
    login: "Log in", username: "Login name", password: "Password", logout: "Log out",
    login_failed: "Wrong login name or password",
    login_limited: "Too many attempts: try again in {s} s",
    open_incidents: "Open incidents", unacked: "Unacknowledged", offline_devices: "Offline devices",
    critical: "Critical", mute: "Mute", unmute: "Unmute", acknowledge: "Acknowledge",
    assign: "Assign", resolve: "Resolve", arrive: "Arrived", reopen: "Reopen", comment: "Note",
    escalate: "Escalate", timeline: "Timeline", overview: "Grid overview", devices: "devices",
    offline: "offline", no_incidents: "No incidents", history: "History", my_open: "To do",
    note: "Note", category: "Category", assignee: "Assign to", cancel: "Cancel", submit: "Submit",
    real_emergency: "Real emergency", false_alarm: "False alarm", device_test: "Device test",
    device_fault: "Device fault", open: "Open", acknowledged: "Acknowledged", resolved: "Resolved",
    closed: "Closed", major: "Major", minor: "Minor", info: "Info",
    live_on: "Live", live_off: "Disconnected, reconnecting…",
    month: "Month", download_csv: "Download CSV", incidents_by_month: "Incidents per month",
    ack_minutes: "Mean time to acknowledge (min)", resolution_rate: "Resolution rate",
    within_deadline: "Handled in time", opened_at: "Opened", where: "Where", what: "What",
    handled_by: "Handled by", ack_time: "To acknowledge", resolve_time: "To resolve",
    resolution: "Resolution", status: "Status", reports: "Ledger", board: "Board", loop_link: "Closed loop", field_link: "On site", ledger_link: "Problem ledger", lang: "中文",
    open_for: "Open for {d}", ack_within: "Acknowledge within {d}", overdue: "Overdue by {d}",
    escalated_n: "Escalated {n}×", acked_by: "Acknowledged: {who}", assigned_to: "Assigned to {who}",
    assigned_to_me: "Assigned to me", arrived_at: "On site {t}", paged: "Paged",
    delivered: "delivered", sending: "sending", failed: "NOT delivered",
    no_channel: "NOT delivered (no way to reach them)", system: "System",
    unacked_short: "unacknowledged", open_short: "open", online: "online", devices_n: "{n} devices",
    no_report_access: "You may not view the ledger: it is open to the secretary, duty staff and admins.",
    load_failed: "Could not load: {e}", empty_month: "Nothing recorded this month",
    d_s: "{s} s", d_ms: "{m} min {s} s", d_m: "{m} min", d_hm: "{h} h {m} min", d_dh: "{d} d {h} h",
    role_grid_worker: "grid worker", role_backup_worker: "backup worker",
    role_building_leader: "building leader", role_duty_staff: "duty staff",
    role_secretary: "secretary", role_family: "family", role_admin: "admin",
    role_street_office: "street office", sites_title: "Communities", site_filter: "Community",
    all_sites: "All communities", site_devices: "{n} devices: {on} online / {off} offline / {unknown} not reporting",
    site_open: "open {n}", site_unacked: "unacknowledged {n}", site_overdue: "overdue {n}",
    site_rectified: "rectified this month {r}", site_no_hazards: "no hazards this month",
    site_open_board: "Open this community's board", site_current: "Showing",
    pick_site: "Choose a community:",
    ev_opened: "Alarm raised", ev_repeated: "Alarm repeated", ev_notified: "Paged",
    ev_escalated: "Escalated", ev_escalated_manually: "Escalated by hand",
    ev_escalating: "Nobody reachable: paging the next step now", ev_acknowledged: "Acknowledged",
    ev_assigned: "Assigned", ev_commented: "Note", ev_arrived: "On site", ev_resolved: "Resolved",
    ev_closed: "Closed", ev_reopened: "Reopened", ev_referred: "Referred to a department",
    ev_alert_cleared: "Alarm cleared; a person resolves it", ev_auto_resolved: "Alarm cleared; resolved automatically",
    ev_reminded: "Reminder sent", ev_household_informed: "Family told the outcome",
    ev_delivery_failed: "Page NOT delivered", ev_ladder_exhausted: "Nobody left to page",
    ev_silenced: "Silenced: nobody paged for now", ev_suppressed: "Silenced: nobody paged for now",
    ev_not_paged: "Cleared while silenced; nobody paged", ev_recorded: "Recorded only",
    ev_merged: "Folded into a building outage", ev_device_attached: "Device joined",
    ev_device_cleared: "Device back", ev_action: "Automatic action done",
    ev_action_failed: "Automatic action failed",
    ev_command_held: "Device command queued (rate limit)", ev_command_sent: "Device command sent",
    ev_command_acked: "Device answered", ev_command_refused: "Device refused",
    ev_command_retry: "Device command resent", ev_command_confirmed: "Confirmed by the device",
    ev_command_failed: "Device command not confirmed", ev_command_superseded: "Device command replaced",
    dept_fire_119: "Fire 119", dept_police_110: "Police 110", dept_ambulance_120: "Ambulance 120",
    dept_property_management: "Property management",
  },
};

const App = {
  lang: localStorage.getItem("lang") || "zh",
  token: localStorage.getItem("token"),
  person: JSON.parse(localStorage.getItem("person") || "null"),

  // The site's time zone and the names behind ids (GET /screen); loaded before the page starts.
  ctx: { timezone: "Asia/Shanghai", utc_offset_minutes: 480, grids: {}, buildings: {}, people: {} },

  t(key, vars) {
    let text = (I18N[App.lang] && I18N[App.lang][key]) || I18N.zh[key] || key;
    for (const [k, v] of Object.entries(vars || {})) text = text.replace(`{${k}}`, v);
    return text;
  },

  async loadContext() {
    App.ctx = await App.api(`/screen${App.siteQuery("?")}`).catch(() => App.ctx);
  },

  // A street office names one of its communities with ?site= (the board's site filter);
  // the one-site pages pass it on to the API. Community staff have no ?site=.
  siteQuery(sep) {
    const site = new URLSearchParams(location.search).get("site");
    return site ? `${sep}site=${encodeURIComponent(site)}` : "";
  },

  // Links between the one-site pages keep the chosen community.
  carrySite() {
    const site = new URLSearchParams(location.search).get("site");
    if (!site) return;
    document.querySelectorAll('a[href*=".html"]').forEach((a) => {
      const url = new URL(a.getAttribute("href"), location.href);
      if (url.origin !== location.origin) return;
      url.searchParams.set("site", site);
      a.setAttribute("href", `${url.pathname.split("/").pop()}${url.search}`);
    });
  },

  // A one-site page opened by a street office without ?site=: links to each of its sites.
  async pickSite(box) {
    const sites = await App.api("/sites").catch(() => []);
    box.replaceChildren(App.el("span", {}, `${App.t("pick_site")} `), ...sites.map((s) => {
      const url = new URL(location.href);
      url.searchParams.set("site", s.code);
      return App.el("a", { href: url.toString(), class: "pick-site", dataset: { site: s.code } }, s.name);
    }));
    box.hidden = false;
  },

  gridName(id) { return App.ctx.grids[id] || id || ""; },
  buildingName(id) { return App.ctx.buildings[id] || id || ""; },
  // Names seen in paged lists too: a family contact is no registry person.
  pagedNames: {},
  personName(id) { return App.ctx.people[id] || App.pagedNames[id] || id || ""; },
  title(i) { return (App.lang === "en" && i.title_en) || i.title; },

  // "北京时间" for Asia/Shanghai (Beijing time in English), otherwise "UTC+8" and so on.
  zoneLabel() {
    if (App.ctx.timezone === "Asia/Shanghai") return App.lang === "zh" ? "北京时间" : "Beijing time";
    const m = App.ctx.utc_offset_minutes;
    const abs = Math.abs(m);
    return `UTC${m < 0 ? "-" : "+"}${Math.floor(abs / 60)}${abs % 60 ? `:${String(abs % 60).padStart(2, "0")}` : ""}`;
  },

  // A span of time as people say it: 45秒, 1分54秒 (to the second under 10 minutes), 12分钟,
  // 1小时5分钟, 2天3小时.
  duration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return App.t("d_s", { s });
    const m = Math.floor(s / 60);
    if (m < 10) return App.t("d_ms", { m, s: s % 60 });
    if (m < 60) return App.t("d_m", { m });
    const h = Math.floor(m / 60);
    if (h < 24) return App.t("d_hm", { h, m: m % 60 });
    return App.t("d_dh", { d: Math.floor(h / 24), h: h % 24 });
  },

  // The live parts of a card (how long open, the deadline countdown) are elements with
  // data-since / data-deadline; App.tick() rewrites them every second.
  clockText(el, now) {
    if (el.dataset.since) return App.t("open_for", { d: App.duration(now - Number(el.dataset.since)) });
    const left = Number(el.dataset.deadline) - now;
    el.classList.toggle("overdue", left < 0);
    return left >= 0 ? App.t("ack_within", { d: App.duration(left) }) : App.t("overdue", { d: App.duration(-left) });
  },

  tick() {
    const now = Date.now();
    document.querySelectorAll("[data-since], [data-deadline]").forEach((el) => {
      el.textContent = App.clockText(el, now);
    });
    const clock = document.getElementById("site-clock");
    if (clock) clock.textContent = `${App.zoneLabel()} ${App.time(now).slice(6)}`;
  },

  since(ms) {
    const el = App.el("span", { class: "since", dataset: { since: String(ms) } });
    el.textContent = App.clockText(el, Date.now());
    return el;
  },

  deadline(ms) {
    const el = App.el("span", { class: "deadline", dataset: { deadline: String(ms) } });
    el.textContent = App.clockText(el, Date.now());
    return el;
  },

  // Who a ladder paged and whether each page got anywhere; a page that went nowhere is loud.
  pagedList(paged) {
    return App.el("ul", { class: "paged" }, ...(paged || []).map((p) => {
      const ok = p.delivery === "delivered" || p.delivery === "sending";
      if (p.name) App.pagedNames[p.person_id] = p.name;
      const name = p.name || App.personName(p.person_id);
      const role = p.role ? `（${App.t(`role_${p.role}`)}）` : "";
      return App.el("li", { class: ok ? `delivery-${p.delivery}` : "undelivered", dataset: { person: p.person_id, delivery: p.delivery } },
        `${name}${role} `, App.el("b", {}, App.t(p.delivery)));
    }));
  },

  // One timeline entry in words: who (a name, or 系统 for the rules) and what happened.
  eventText(e) {
    const system = e.actor === "system" || e.actor.startsWith("rule:");
    const who = system ? App.t("system") : App.personName(e.actor);
    const data = e.data || {};
    let kind = e.kind;
    let note = system ? "" : e.note;
    if (kind === "commented" && note.startsWith("[到场]")) { kind = "arrived"; note = note.slice(4).trim(); }
    let extra = "";
    if (kind === "notified" || kind === "escalated" || kind === "reminded" || kind === "household_informed") {
      const people = data.paged || (data.people || []).map((p) => ({ person: p }));
      extra = people.map((p) => p.name || App.personName(p.person)).join("、");
    } else if (kind === "assigned") {
      extra = App.personName(data.assignee);
    } else if (kind === "delivery_failed") {
      extra = App.personName(data.person);
    } else if (kind === "resolved" && data.category) {
      extra = App.t(data.category);
    } else if (kind === "referred" && data.department) {
      extra = App.t(`dept_${data.department}`);
    }
    return [App.time(e.at_ms), who, App.t(`ev_${kind}`), extra, note].filter(Boolean).join(" · ");
  },

  translate(root = document) {
    document.documentElement.lang = App.lang === "zh" ? "zh-CN" : "en";
    root.querySelectorAll("[data-zone]").forEach((el) => { el.textContent = `（${App.zoneLabel()}）`; });
    root.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = App.t(el.dataset.i18n); });
    root.querySelectorAll("[data-i18n-placeholder]").forEach((el) => {
      el.placeholder = App.t(el.dataset.i18nPlaceholder);
    });
  },

  toggleLang() {
    App.lang = App.lang === "zh" ? "en" : "zh";
    localStorage.setItem("lang", App.lang);
    App.translate();
    document.dispatchEvent(new Event("langchange"));
  },

  async login(username, password) {
    const body = new URLSearchParams({ username, password });
    const r = await fetch("/api/v1/auth/login", { method: "POST", body });
    if (r.status === 429 || r.status === 503) {
      throw new Error(App.t("login_limited").replace("{s}", r.headers.get("Retry-After") || "60"));
    }
    if (!r.ok) throw new Error(App.t("login_failed"));
    App.keep(await r.json());
    return App.person;
  },

  keep(data) {
    App.token = data.access_token;
    App.person = data.person;
    localStorage.setItem("token", App.token);
    localStorage.setItem("person", JSON.stringify(App.person));
    if (data.refresh_token) localStorage.setItem("refresh_token", data.refresh_token);
  },

  // A login lasts a shift: a refused access token is renewed with the refresh token (one
  // renewal at a time: a refresh token works once). False once the login has ended.
  refresh() {
    if (!App.refreshing) {
      App.refreshing = (async () => {
        const token = localStorage.getItem("refresh_token");
        if (!token) return false;
        const r = await fetch("/api/v1/auth/refresh", {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ refresh_token: token }),
        }).catch(() => null);
        if (r === null) return null;  // offline: the login may still stand
        if (!r.ok) return false;
        App.keep(await r.json());
        return true;
      })().finally(() => { App.refreshing = null; });
    }
    return App.refreshing;
  },

  logout() {
    for (const key of ["token", "person", "refresh_token"]) localStorage.removeItem(key);
    if (navigator.serviceWorker && navigator.serviceWorker.controller) {
      navigator.serviceWorker.controller.postMessage("logout");
    }
    location.reload();
  },

  async api(path, options = {}) {
    const headers = Object.assign({ Authorization: `Bearer ${App.token}` }, options.headers || {});
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(options.json);
    }
    let r = await fetch(`/api/v1${path}`, Object.assign({}, options, { headers }));
    if (r.status === 401 && !options.retried && await App.refresh()) {
      return App.api(path, Object.assign({}, options, { retried: true, headers: options.headers }));
    }
    if (r.status === 401) { App.logout(); throw new Error("unauthorized"); }
    if (!r.ok) {
      const err = await r.json().catch(() => ({ detail: r.statusText }));
      const error = new Error(typeof err.detail === "string" ? err.detail : r.statusText);
      error.status = r.status;
      throw error;
    }
    return r.status === 204 ? null : r.json();
  },

  // EventSource reconnects by itself, sending Last-Event-ID: the server replays what was
  // missed. When it gives up (the server refused or was gone), a new stream resumes from the
  // last event seen, with a renewed token. onState(true|false) shows the connection.
  live(handlers, onState) {
    let lastId = null;
    const open = () => {
      let url = `/api/v1/live?access_token=${encodeURIComponent(App.token)}`;
      if (lastId !== null) url += `&last_event_id=${encodeURIComponent(lastId)}`;
      const source = new EventSource(url);
      source.addEventListener("hello", () => onState(true));
      source.onerror = () => {
        onState(false);
        if (source.readyState !== EventSource.CLOSED) return;
        setTimeout(async () => { await App.refresh(); open(); }, 3000);
      };
      for (const [kind, fn] of Object.entries(handlers)) {
        source.addEventListener(kind, (e) => {
          if (e.lastEventId) lastId = e.lastEventId;
          fn(JSON.parse(e.data));
        });
      }
      if (!handlers.reset) source.addEventListener("reset", (e) => { lastId = e.lastEventId || lastId; });
      App.source = source;
    };
    open();
  },

  // Always the site's time zone (never the browser's): "11-25 08:03:04".
  time(ms) {
    if (ms == null) return "";
    const parts = {};
    new Intl.DateTimeFormat("en-GB", {
      timeZone: App.ctx.timezone, month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    }).formatToParts(new Date(ms)).forEach((p) => { parts[p.type] = p.value; });
    return `${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}`;
  },

  // This month in the site's time zone: "2026-12".
  month(ms) {
    const parts = {};
    new Intl.DateTimeFormat("en-GB", { timeZone: App.ctx.timezone, year: "numeric", month: "2-digit" })
      .formatToParts(new Date(ms)).forEach((p) => { parts[p.type] = p.value; });
    return `${parts.year}-${parts.month}`;
  },

  el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v);
    }
    for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
    return node;
  },

  // Shows the login form until someone is logged in, then calls start(person).
  boot(start) {
    App.translate();
    document.querySelectorAll(".lang-toggle").forEach((b) => b.addEventListener("click", App.toggleLang));
    document.querySelectorAll(".logout").forEach((b) => b.addEventListener("click", App.logout));
    const form = document.getElementById("login-form");
    const show = (loggedIn) => {
      document.getElementById("login").hidden = loggedIn;
      document.getElementById("main").hidden = !loggedIn;
    };
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const error = document.getElementById("login-error");
      error.textContent = "";
      let person;
      try {
        person = await App.login(form.username.value, form.password.value);
      } catch (err) { error.textContent = err.message; return; }
      await App.started(start, person, show);
    });
    if (App.token && App.person) { App.started(start, App.person, show); } else { show(false); }
  },

  async started(start, person, show) {
    await App.loadContext();
    App.carrySite();
    App.translate();
    show(true);
    App.tick();
    setInterval(App.tick, 1000);
    start(person);
  },
};
