// A department answers a referral from the link in its message: no login, the link is the key.
"use strict";

(() => {
  const token = new URLSearchParams(location.search).get("t") || "";
  const info = document.getElementById("ref-info");
  const msg = document.getElementById("reply-msg");
  const STATUS = { sent: "待受理", accepted: "已受理", replied: "已回复", declined: "已退回" };
  const show = (r) => {
    const due = new Date(r.due_at_ms).toLocaleString("zh-CN", { hour12: false });
    info.textContent = `${r.department_name} · ${r.title} · ${r.location} · 状态: ${STATUS[r.status] || r.status} · 回复期限 ${due}`;
  };
  fetch(`/api/v1/loop/referrals/${encodeURIComponent(token)}`).then(async (r) => {
    if (!r.ok) { msg.textContent = "链接无效 (this link is not valid)"; msg.className = "msg err"; return; }
    show(await r.json());
  });
  document.getElementById("reply-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const status = e.submitter ? e.submitter.value : "accepted";
    const r = await fetch(`/api/v1/loop/referrals/${encodeURIComponent(token)}/reply`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ status, note: e.target.note.value }),
    });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) { msg.textContent = data.detail || "提交失败"; msg.className = "msg err"; return; }
    show(data);
    msg.textContent = "已提交，谢谢 (sent, thank you)";
    msg.className = "msg";
  });
})();
