// What every page shares: the light/dark theme (the system's unless the visitor chose one) and the
// navigation's current page. Every page's bundle imports this module first.

const THEME_KEY = "libra-theme";

function applyTheme(theme) {
  if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
  const toggle = document.getElementById("theme-toggle");
  if (toggle) {
    const dark = theme === "dark" || (!theme && matchMedia("(prefers-color-scheme: dark)").matches);
    toggle.setAttribute("aria-pressed", String(dark));
    toggle.textContent = dark ? "Light theme" : "Dark theme";
  }
}

export function currentTheme() {
  const chosen = document.documentElement.dataset.theme;
  if (chosen) return chosen;
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

function setUp() {
  applyTheme(localStorage.getItem(THEME_KEY));
  document.getElementById("theme-toggle")?.addEventListener("click", () => {
    const next = currentTheme() === "dark" ? "light" : "dark";
    localStorage.setItem(THEME_KEY, next);
    applyTheme(next);
    document.dispatchEvent(new CustomEvent("libra:theme", { detail: next }));
  });
  const here = location.pathname.startsWith("/models/") ? "/leaderboard" : location.pathname;
  for (const link of document.querySelectorAll("header.site nav a")) {
    if (link.getAttribute("href") === here) link.setAttribute("aria-current", "page");
  }
}

setUp();
