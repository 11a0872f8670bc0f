// carepath worklist: the language picker applies on change; live updates are added by the events stream.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const lang = document.getElementById("lang-select");
  if (lang) lang.addEventListener("change", () => lang.form.submit());
});
