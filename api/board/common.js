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
    resolve_time: "办结用时", resolution: "处置结果", status: "状态", reports: "台账", board: "值班台",
    lang: "English",
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
    resolution: "Resolution", status: "Status", reports: "Ledger", board: "Board", lang: "中文",
  },
};

const App = {
  lang: localStorage.getItem("lang") || "zh",
  token: localStorage.getItem("token"),
  person: JSON.parse(localStorage.getItem("person") || "null"),

  t(key) { return (I18N[App.lang] && I18N[App.lang][key]) || I18N.zh[key] || key; },

  translate(root = document) {
    document.documentElement.lang = App.lang === "zh" ? "zh-CN" : "en";
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
      throw new Error(typeof err.detail === "string" ? err.detail : r.statusText);
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

  time(ms) {
    if (ms == null) return "";
    const d = new Date(ms);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getMonth() + 1}-${d.getDate()} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
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
      try {
        const person = await App.login(form.username.value, form.password.value);
        show(true);
        start(person);
      } catch (err) { error.textContent = err.message; }
    });
    if (App.token && App.person) { show(true); start(App.person); } else { show(false); }
  },
};
