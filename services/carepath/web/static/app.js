// carepath worklist: the language picker applies on change; live updates from /app/live (server-sent events).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const lang = document.getElementById("lang-select");
  if (lang) lang.addEventListener("change", () => lang.form.submit());
  const body = document.body;
  const region = document.getElementById("live-region");
  if (!body.dataset.live || !window.EventSource || !region) return;
  // The parts of the page that are re-read when work changes; the filter form and any typed text are left alone.
  const parts = ["#worklist-results", "#patient-plans"].filter((s) => document.querySelector(s));
  let timer = null;
  const refresh = (message) => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      if (parts.length) {
        const response = await fetch(window.location.href, { credentials: "same-origin" });
        if (!response.ok) return;
        const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
        for (const selector of parts) {
          const now = document.querySelector(selector);
          const next = fresh.querySelector(selector);
          if (now && next) now.replaceWith(next);
        }
      }
      region.textContent = message;
    }, 250);
  };
  const source = new EventSource("/app/live");
  source.addEventListener("change", () => refresh(body.dataset.liveUpdated));
  source.addEventListener("alert", () => refresh(body.dataset.liveAlert));
});
