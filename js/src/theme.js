// Light / dark detection. JupyterLab and Voilà put data-jp-theme-light on <body>;
// VS Code sets body classes; anything else (an HTML export) follows the OS setting.

function isDark(el) {
  const doc = el.ownerDocument || document;
  const themed = el.closest("[data-jp-theme-light]") || doc.querySelector("[data-jp-theme-light]");
  if (themed) return themed.getAttribute("data-jp-theme-light") === "false";
  const body = doc.body;
  if (body && (body.classList.contains("vscode-dark") || body.classList.contains("vscode-high-contrast"))) {
    return !body.classList.contains("vscode-high-contrast-light");
  }
  return Boolean(window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches);
}

/**
 * Keep `root.dataset.abstractorTheme` ("light" | "dark") up to date with the host.
 * Returns a cleanup function.
 */
export function watchTheme(root) {
  const apply = () => {
    const theme = isDark(root) ? "dark" : "light";
    if (root.dataset.abstractorTheme !== theme) root.dataset.abstractorTheme = theme;
  };
  apply();
  // The view may be attached to the page after render(): look again shortly.
  const timer = setTimeout(apply, 0);
  const observer = new MutationObserver(apply);
  const body = (root.ownerDocument || document).body;
  if (body) observer.observe(body, { attributes: true, attributeFilter: ["data-jp-theme-light", "class"] });
  const media = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  media?.addEventListener?.("change", apply);
  return () => {
    clearTimeout(timer);
    observer.disconnect();
    media?.removeEventListener?.("change", apply);
  };
}
