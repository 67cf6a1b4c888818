// The worker app's parts beyond the list: what an incident card tells a worker on the stairs
// (what, where, who lives there, whom to call, what to do first), the alarm that sounds until
// a critical incident is acknowledged, and Web Push for when the app is closed.
"use strict";

Object.assign(I18N.zh, {
  offline_banner: "离线 — 正在重连", alarm_on: "紧急警情！确认后停止警报", alarm_enable: "开启警报声",
  push_enable: "开启通知", push_on: "已开启通知", push_denied: "通知被禁止，请在系统设置中允许",
  push_unavailable: "本机不支持推送通知", logout_everywhere: "所有设备退出",
  logout_everywhere_confirm: "退出本账号在所有手机和电脑上的登录？",
  guidance: "先做", household: "住户", family: "家属电话", readings: "最新读数", reasons: "报警原因",
  map: "地图", resident_note: "备注",
});
Object.assign(I18N.en, {
  offline_banner: "Offline — reconnecting", alarm_on: "Critical incident! Acknowledge to stop the alarm",
  alarm_enable: "Turn alarm sound on", push_enable: "Turn notifications on", push_on: "Notifications on",
  push_denied: "Notifications blocked: allow them in the phone's settings",
  push_unavailable: "This phone cannot receive push notifications",
  logout_everywhere: "Log out on all devices",
  logout_everywhere_confirm: "Log this account out on every phone and computer?",
  guidance: "Do first", household: "Household", family: "Family", readings: "Latest readings",
  reasons: "Reasons", map: "Map", resident_note: "Note",
});

const WorkerCard = {
  details(i) {
    const c = i.card || {};
    const where = c.where || {};
    const parts = [];
    if (c.what) parts.push(App.el("div", { class: "card-what" }, c.what));
    const place = App.el("div", { class: "card-where" }, where.text || i.location || i.device_id || "");
    if (where.map_url) {
      place.append(" ", App.el("a", { href: where.map_url, target: "_blank", rel: "noopener", class: "map-link" },
        App.t("map")));
    }
    parts.push(place);
    if (c.guidance) {
      parts.push(App.el("div", { class: "card-guidance" },
        App.el("strong", {}, `${App.t("guidance")}：`), c.guidance));
    }
    if (c.household) parts.push(WorkerCard.household(c.household));
    if ((i.reasons || []).length > 1) {
      parts.push(App.el("ul", { class: "card-reasons", "aria-label": App.t("reasons") },
        i.reasons.map((r) => App.el("li", {}, r.title || r.rule))));
    }
    if ((c.readings || []).length) {
      parts.push(App.el("div", { class: "card-readings" }, `${App.t("readings")}：`,
        c.readings.map((r) => `${r.label} ${r.value}${r.unit}`).join("，")));
    }
    return parts;
  },

  household(h) {
    const box = App.el("div", { class: "card-household" },
      App.el("div", {}, App.el("strong", {}, `${App.t("household")}：`), h.resident || ""),
      App.el("div", { class: "flags" }, (h.flags || []).map((f) => App.el("span", { class: "flag" }, f))));
    if (h.note) box.append(App.el("div", { class: "card-note" }, `${App.t("resident_note")}：${h.note}`));
    if ((h.contacts || []).length) {
      box.append(App.el("div", { class: "card-family" }, App.el("strong", {}, `${App.t("family")}：`),
        h.contacts.map((p) => App.el("a", { href: p.tel, class: "tel" },
          `${p.name}${p.relation ? `（${p.relation}）` : ""} ${p.phone}`))));
    }
    return box;
  },
};

// A loud two-tone siren and vibration, repeating while a critical incident is unacknowledged.
const Alarm = {
  ctx: null, timer: null,

  audio() {
    if (!Alarm.ctx) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (Ctx) Alarm.ctx = new Ctx();
    }
    if (Alarm.ctx && Alarm.ctx.state === "suspended") Alarm.ctx.resume().catch(() => {});
    return Alarm.ctx;
  },

  beep() {
    const ctx = Alarm.ctx;
    if (ctx && ctx.state === "running") {
      for (const [freq, at] of [[988, 0], [659, 0.35], [988, 0.7], [659, 1.05]]) {
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.type = "square";
        osc.frequency.value = freq;
        gain.gain.value = 0.6;
        osc.connect(gain).connect(ctx.destination);
        osc.start(ctx.currentTime + at);
        osc.stop(ctx.currentTime + at + 0.3);
      }
    }
    if (navigator.vibrate) navigator.vibrate([600, 200, 600]);
    document.getElementById("alarm-sound").hidden = !!(ctx && ctx.state === "running");
  },

  set(on) {
    document.body.dataset.alarm = on ? "on" : "off";
    document.getElementById("alarm-bar").hidden = !on;
    if (on && !Alarm.timer) {
      Alarm.audio();
      Alarm.beep();
      Alarm.timer = setInterval(Alarm.beep, 1500);
    } else if (!on && Alarm.timer) {
      clearInterval(Alarm.timer);
      Alarm.timer = null;
      if (navigator.vibrate) navigator.vibrate(0);
    }
  },
};

// Web Push: subscribe this phone so pages arrive with the app closed.
const Push = {
  supported() {
    return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
  },

  key(text) {
    const raw = atob((text + "=".repeat((4 - (text.length % 4)) % 4)).replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(raw, (ch) => ch.charCodeAt(0));
  },

  async setup() {
    const button = document.getElementById("enable-push");
    if (!Push.supported()) return;
    let key;
    try { key = (await App.api("/push/vapid-public-key")).public_key; } catch (err) { return; }
    const registration = await navigator.serviceWorker.ready;
    const existing = await registration.pushManager.getSubscription();
    if (existing && Notification.permission === "granted") {
      await Push.save(existing);  // keeps the gateway's copy current (a new login, a new key)
      return;
    }
    button.hidden = false;
    button.onclick = async () => {
      if (await Notification.requestPermission() !== "granted") {
        Push.state("push_denied");
        return;
      }
      const sub = await registration.pushManager.subscribe({
        userVisibleOnly: true, applicationServerKey: Push.key(key),
      });
      await Push.save(sub);
      button.hidden = true;
    };
  },

  async save(sub) {
    const label = (navigator.userAgentData && navigator.userAgentData.platform) || navigator.platform || "phone";
    await App.api("/push/subscriptions", { method: "POST", json: Object.assign(sub.toJSON(), { device_label: label }) });
    Push.state("push_on");
  },

  state(key) {
    const el = document.getElementById("push-state");
    el.dataset.i18n = key;
    el.textContent = App.t(key);
  },
};
