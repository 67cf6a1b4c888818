// The printable rectification notice (整改通知书) of one hazard.
"use strict";

(async () => {
  const id = new URLSearchParams(location.search).get("id");
  const fmt = (ms) => new Date(ms).toLocaleString("zh-CN", { hour12: false, year: "numeric", month: "long", day: "numeric", hour: "2-digit", minute: "2-digit" });
  const [detail, c] = await Promise.all([App.api(`/incidents/${id}`), App.api(`/incidents/${id}/case`)]);
  const i = detail.incident;
  const who = { household: "住户", property: "物业服务企业", department: "责任部门" }[c.responsible_kind] || "";
  document.getElementById("notice-no").textContent = `编号：${i.site}-${i.id}`;
  document.getElementById("notice-to").textContent = `${c.responsible_name || who}`;
  document.getElementById("notice-body").textContent =
    `经${App.t(c.source)}发现，${i.location}存在${App.t(c.case_category || "other")}安全隐患：${c.description}。请立即整改。`;
  document.getElementById("notice-deadline").textContent = c.deadline_ms ? `整改期限：${fmt(c.deadline_ms)}前。` : "";
  document.getElementById("notice-sign").textContent = `社区居民委员会\n${fmt(i.opened_at_ms)}`;
  document.getElementById("print").addEventListener("click", () => window.print());
})();
