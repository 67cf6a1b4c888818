// A resident rates how their matter was handled (满意/基本满意/不满意), from the SMS link.
"use strict";

(() => {
  const token = new URLSearchParams(location.search).get("t") || "";
  const msg = document.getElementById("rate-msg");
  const url = `/api/v1/loop/feedback/${encodeURIComponent(token)}`;
  const NAMES = { satisfied: "满意", basically_satisfied: "基本满意", dissatisfied: "不满意" };
  fetch(url).then(async (r) => {
    if (!r.ok) { msg.textContent = "链接无效"; msg.className = "msg err"; return; }
    const data = await r.json();
    document.getElementById("rate-info").textContent = `${data.title}：已处理完毕，请评价：`;
    if (data.rating) msg.textContent = `您的评价：${NAMES[data.rating]}`;
  });
  document.querySelectorAll("#choices button").forEach((b) => b.addEventListener("click", async () => {
    const r = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ rating: b.dataset.rating }) });
    msg.className = r.ok ? "msg" : "msg err";
    msg.textContent = r.ok ? `感谢您的评价：${NAMES[b.dataset.rating]}` : "提交失败，请稍后再试";
  }));
})();
