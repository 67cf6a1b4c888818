// Shows the "社区管理" menu link only to the roles the admin screens serve (the server refuses
// everyone else anyway). Watches #main appear, so the pages' own scripts need no change.
"use strict";

(() => {
  const link = document.getElementById("admin-link");
  const main = document.getElementById("main");
  if (!link || !main) return;
  const update = () => {
    const person = JSON.parse(localStorage.getItem("person") || "null");
    link.hidden = !person || !["admin", "secretary", "duty_staff"].includes(person.role);
    link.textContent = (localStorage.getItem("lang") || "zh") === "en" ? "Admin" : "社区管理";
  };
  new MutationObserver(update).observe(main, { attributes: true, attributeFilter: ["hidden"] });
  document.addEventListener("langchange", update);
  update();
})();
