// Menu links added by the admin screens: "社区管理" only for the roles those screens serve (the
// server refuses everyone else anyway), and links named in both languages (data-link-zh/-en).
// Watches #main appear, so the pages' own scripts need no change.
"use strict";

(() => {
  const link = document.getElementById("admin-link");
  const main = document.getElementById("main");
  if (!main) return;
  const update = () => {
    const person = JSON.parse(localStorage.getItem("person") || "null");
    const en = (localStorage.getItem("lang") || "zh") === "en";
    if (link) {
      link.hidden = !person || !["admin", "secretary", "duty_staff"].includes(person.role);
      link.textContent = en ? "Admin" : "社区管理";
    }
    document.querySelectorAll("[data-link-zh]").forEach((a) => {
      a.textContent = en ? a.dataset.linkEn : a.dataset.linkZh;
    });
  };
  new MutationObserver(update).observe(main, { attributes: true, attributeFilter: ["hidden"] });
  document.addEventListener("langchange", update);
  update();
})();
