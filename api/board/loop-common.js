// Words and helpers of the closed-loop screens (the loop page, the field page, notice).
"use strict";

Object.assign(I18N.zh, {
  loop_title: "闭环处置", intake: "立案登记", triage: "研判队列", to_verify: "待核查", in_progress: "处置中",
  source: "来源", patrol: "网格员巡查", hotline: "24小时热线", resident: "居民上报", inspection: "安全排查",
  device: "设备报警", gas: "燃气", fire: "消防", electric: "用电", corridor: "楼道堆物", other: "其他",
  grid: "网格", building: "楼栋", unit_room: "单元-房号", place: "地点说明", description: "情况描述",
  severity: "紧急程度", caller_name: "来电人", caller_phone: "来电号码", hazard: "隐患（需限期整改）",
  deadline: "整改期限", responsible: "责任方", responsible_name: "责任人/单位", household: "住户",
  property: "物业", department: "部门", photo: "照片", create: "立案", tier_grid: "网格处理",
  tier_community: "社区处理", refer: "转派部门", verify_pass: "核查通过，结案", verify_fail: "核查不通过，退回",
  reply_status: "部门回复", sent: "已发送", accepted: "已受理", replied: "已回复", declined: "已退回",
  notice: "整改通知", rectifying: "整改中", reinspect: "复查", rectified: "已整改", reported: "已上报",
  overdue: "已逾期", reinspected: "已复查", print_notice: "打印整改通知书", handled: "处置完毕",
  field_title: "现场处置", take_photo: "拍照", resolve_with_photo: "办结", report_hazard: "上报隐患",
  saved: "已保存", no_items: "暂无", due: "期限", rating: "评价", satisfied: "满意",
  basically_satisfied: "基本满意", dissatisfied: "不满意", loop_link: "闭环处置", field_link: "现场处置",
  critical: "紧急", case_category: "问题类别", photo_chosen: "已选照片", ledger_title: "问题台账", silence_device: "设备维护（暂停通知，生命安全报警除外）", under_maintenance: "设备维护中",
});
Object.assign(I18N.en, {
  loop_title: "Closed loop", intake: "New case", triage: "Triage", to_verify: "To verify", in_progress: "In progress",
  source: "Source", patrol: "Patrol", hotline: "Hotline", resident: "Resident", inspection: "Inspection",
  device: "Device", gas: "Gas", fire: "Fire", electric: "Electric", corridor: "Corridor clutter", other: "Other",
  grid: "Grid", building: "Building", unit_room: "Unit-room", place: "Where", description: "Description",
  severity: "Severity", caller_name: "Caller", caller_phone: "Caller phone", hazard: "Hazard (deadline)",
  deadline: "Deadline", responsible: "Responsible", responsible_name: "Responsible name", household: "Household",
  property: "Property company", department: "Department", photo: "Photo", create: "Open case",
  tier_grid: "Grid handles", tier_community: "Community takes over", refer: "Refer",
  verify_pass: "Verified: close", verify_fail: "Not verified: send back", reply_status: "Reply",
  sent: "Sent", accepted: "Accepted", replied: "Replied", declined: "Declined", notice: "Notice",
  rectifying: "Rectifying", reinspect: "Re-inspect", rectified: "Rectified", reported: "Reported",
  overdue: "Overdue", reinspected: "Re-inspected", print_notice: "Print notice", handled: "Handled",
  field_title: "Field work", take_photo: "Photo", resolve_with_photo: "Resolve", report_hazard: "Report hazard",
  saved: "Saved", no_items: "None", due: "Due", rating: "Rating", satisfied: "Satisfied",
  basically_satisfied: "Basically satisfied", dissatisfied: "Dissatisfied", loop_link: "Closed loop",
  field_link: "Field work", case_category: "Category", photo_chosen: "Photo chosen", ledger_title: "Problem ledger", silence_device: "Maintenance (pause pages; life-safety alarms still page)", under_maintenance: "Device under maintenance",
});

const EVENT_ZH = {
  opened: "立案", triaged: "研判", referred: "转派部门", referral_sent: "已发送部门",
  referral_send_failed: "发送部门失败", department_accepted: "部门已受理", department_replied: "部门已回复",
  department_declined: "部门退回", referral_overdue: "部门逾期未复", commented: "备注", photo_added: "上传照片",
  acknowledged: "已确认", assigned: "指派", resolved: "办结", closed: "核查结案", reopened: "退回重办",
  feedback_sent: "已向居民反馈", feedback_failed: "居民反馈发送失败", rated: "居民评价", notified: "已通知",
  escalated: "已上报", reminded: "已提醒", hazard_notice: "已下发整改通知", hazard_rectifying: "整改中",
  hazard_reinspected: "已复查", hazard_rectified: "已整改", hazard_overdue: "整改逾期",
  hazard_deadline_near: "整改期限将至", under_maintenance: "设备维护中", silence_set: "设置维护时段",
  verify_photos: "核查照片",
};

const Loop = {
  kind(k) { return App.lang === "zh" ? (EVENT_ZH[k] || k) : k.replaceAll("_", " "); },

  // Upload one photo file; returns its id.
  async upload(incidentId, file) {
    const body = new FormData();
    body.append("file", file);
    const r = await fetch(`/api/v1/incidents/${incidentId}/photos`, {
      method: "POST", body, headers: { Authorization: `Bearer ${App.token}` },
    });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(typeof data.detail === "string" ? data.detail : r.statusText);
    return data.id;
  },

  // Thumbnails: photos need the login, so they are fetched and shown as data: URLs.
  async thumbs(incidentId, photos) {
    const box = App.el("div", { class: "thumbs" });
    for (const p of photos) {
      const r = await fetch(`/api/v1/incidents/${incidentId}/photos/${p.id}`, {
        headers: { Authorization: `Bearer ${App.token}` },
      });
      if (!r.ok) continue;
      const blob = await r.blob();
      const url = await new Promise((ok) => { const f = new FileReader(); f.onload = () => ok(f.result); f.readAsDataURL(blob); });
      box.append(App.el("img", { src: url, alt: App.t("photo") }));
    }
    return box;
  },

  msg(el, text, error = false) { el.textContent = text; el.className = error ? "msg err" : "msg"; },

  caseLines(c) {
    const dl = App.el("dl", { class: "case" });
    const add = (k, v) => { if (v) dl.append(App.el("dt", {}, App.t(k)), App.el("dd", {}, v)); };
    add("source", App.t(c.source));
    add("case_category", c.case_category ? App.t(c.case_category) : "");
    add("description", c.description);
    add("caller_name", c.caller_name ? `${c.caller_name} ${c.caller_phone}` : "");
    if (c.hazard) {
      add("deadline", App.time(c.deadline_ms));
      add("responsible", `${App.t(c.responsible_kind || "")} ${c.responsible_name}`);
      add("status", App.t(c.hazard_state));
    }
    for (const r of c.referrals) add("department", `${r.department_name} · ${App.t(r.status)} ${r.reply}`);
    if (c.rating) add("rating", App.t(c.rating));
    return dl;
  },
};
