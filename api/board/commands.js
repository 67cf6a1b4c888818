// Device commands on an incident (worker cards and the board's detail panel): restore a port's
// power, open a valve, run a self-test … each after a confirmation, with the command's state
// (held over the rate → sent → acknowledged → confirmed, or unconfirmed: go and see) shown under the buttons.
"use strict";

Object.assign(I18N.zh, {
  device_commands: "设备操作", cmd_confirm: "确定向设备发送「{label}」吗？",
  cmd_port: "{n}号口", cmd_held: "限速排队，按顺序发送", cmd_sent: "已发送，等待设备回执", cmd_acknowledged: "设备已回执，等待状态确认",
  cmd_confirmed: "设备已确认", cmd_failed: "未确认 — 请现场处置", cmd_superseded: "已被新的操作取代",
  cmd_ack_first: "请先点“确认”接手此事件，再恢复供电或开阀",
});
Object.assign(I18N.en, {
  device_commands: "Device", cmd_confirm: "Send \"{label}\" to the device?",
  cmd_port: "port {n}", cmd_held: "Queued by the command rate, sent in order", cmd_sent: "Sent, waiting for the device", cmd_acknowledged:
    "Device answered, waiting for its state", cmd_confirmed: "Confirmed by the device",
  cmd_failed: "Not confirmed — check on site", cmd_superseded: "Replaced by a later command",
  cmd_ack_first: "Acknowledge the incident first: someone must be in charge",
});

const Commands = {
  cache: new Map(), // incident id -> {at, data}

  async get(id, fresh) {
    const hit = Commands.cache.get(id);
    if (!fresh && hit && Date.now() - hit.at < 5000) return hit.data;
    const data = await App.api(`/incidents/${id}/commands`);
    Commands.cache.set(id, { at: Date.now(), data });
    return data;
  },

  label(c) {
    const name = App.lang === "en" ? c.label_en : c.label;
    return c.port ? `${name}（${App.t("cmd_port").replace("{n}", c.port)}）` : name;
  },

  async fill(box, id, fresh) {
    let data;
    try { data = await Commands.get(id, fresh); } catch (err) { return; }
    if (!data.available.length) { box.hidden = true; return; }
    const names = Object.fromEntries(data.available.map((c) => [c.command, c]));
    const buttons = data.available.map((c) => App.el("button", {
      type: "button", class: `cmd cmd-${c.command}`, dataset: { command: c.command },
      onclick: () => Commands.send(box, id, c),
    }, Commands.label(c)));
    const last = data.sent[data.sent.length - 1];
    const state = last ? App.el("div", { class: `meta cmd-state cmd-${last.status}` },
      `${Commands.label(names[last.command] || { label: last.command, label_en: last.command, port: last.port })}`
      + ` · ${App.t(`cmd_${last.status}`)}`) : "";
    box.replaceChildren(App.el("div", { class: "meta" }, App.t("device_commands")),
      App.el("div", { class: "actions" }, ...buttons), state);
    box.hidden = false;
  },

  async send(box, id, c) {
    // The confirmation step: a command switches power or gas in someone's home.
    if (!window.confirm(App.t("cmd_confirm").replace("{label}", Commands.label(c)))) return;
    try {
      await App.api(`/incidents/${id}/commands`, { method: "POST", json: { command: c.command, port: c.port } });
    } catch (err) {
      alert(err.message.includes("acknowledge the incident first") ? App.t("cmd_ack_first") : err.message);
      return;
    }
    await Commands.fill(box, id, true);
    // Follow the command until the device has confirmed it (or it failed).
    const follow = setInterval(async () => {
      const data = await Commands.get(id, true).catch(() => null);
      const last = data && data.sent[data.sent.length - 1];
      if (!box.isConnected || !last || !["held", "sent", "acknowledged"].includes(last.status)) clearInterval(follow);
      if (box.isConnected) Commands.fill(box, id);
    }, 2000);
  },

  attach(container, id) {
    if (!container || container.querySelector(":scope > .commands")) return;
    const box = App.el("div", { class: "commands", dataset: { incident: id } });
    box.hidden = true;
    container.append(box);
    Commands.fill(box, id);
  },

  watch() {
    const cards = document.getElementById("my-incidents"); // the worker's phone view
    if (cards) {
      const scan = () => cards.querySelectorAll("li.incident[data-id]").forEach(
        (li) => Commands.attach(li, Number(li.dataset.id)));
      new MutationObserver(scan).observe(cards, { childList: true });
      scan();
    }
    const detail = document.getElementById("detail-actions"); // the duty board's detail panel
    if (detail) {
      new MutationObserver(() => {
        const id = typeof Board !== "undefined" ? Board.selected : null;
        if (id != null) Commands.attach(detail.parentElement, id);
        const box = detail.parentElement.querySelector(":scope > .commands");
        if (box && Number(box.dataset.incident) !== id) { box.remove(); Commands.attach(detail.parentElement, id); }
      }).observe(detail, { childList: true });
    }
    document.addEventListener("langchange", () => document.querySelectorAll(".commands").forEach(
      (box) => Commands.fill(box, Number(box.dataset.incident))));
  },
};

document.addEventListener("DOMContentLoaded", Commands.watch);
