// Filters that drive the similar papers, the map and the trends: category, date range
// (months) and a keyword. "Apply" (or Enter) sends them; the kernel validates.

import { h, uid } from "./dom.js";

export function filtersFrom({ category, from, to, keyword }) {
  return {
    categories: category ? [category] : [],
    date_from: from || "",
    date_to: to || "",
    keyword: (keyword || "").trim(),
  };
}

export function createFilters({ onApply }) {
  const ids = { cat: uid(), from: uid(), to: uid(), kw: uid() };
  const category = h("select", { id: ids.cat, class: "abstractor-filter-category" });
  const from = h("input", { id: ids.from, class: "abstractor-filter-date", type: "month", placeholder: "YYYY-MM" });
  const to = h("input", { id: ids.to, class: "abstractor-filter-date", type: "month", placeholder: "YYYY-MM" });
  const keyword = h("input", { id: ids.kw, class: "abstractor-filter-keyword", type: "search", maxlength: "200", placeholder: "words in title or abstract", spellcheck: "false" });
  const apply = h("button", { type: "button", class: "abstractor-btn abstractor-btn-primary", text: "Apply filters" });
  const clear = h("button", { type: "button", class: "abstractor-btn", text: "Clear" });
  const count = h("span", { class: "abstractor-muted abstractor-filter-count", role: "status", "aria-live": "polite" });
  const el = h(
    "form",
    { class: "abstractor-filters", "aria-label": "Filters" },
    h("label", { class: "abstractor-n-label", for: ids.cat }, "Category ", category),
    h("label", { class: "abstractor-n-label", for: ids.from }, "From ", from),
    h("label", { class: "abstractor-n-label", for: ids.to }, "To ", to),
    h("label", { class: "abstractor-n-label", for: ids.kw }, "Keyword ", keyword),
    apply,
    clear,
    count,
  );
  const send = () => onApply?.(filtersFrom({ category: category.value, from: from.value, to: to.value, keyword: keyword.value }));
  el.addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  apply.addEventListener("click", send);
  clear.addEventListener("click", () => {
    category.value = "";
    from.value = "";
    to.value = "";
    keyword.value = "";
    send();
  });
  keyword.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      send();
    }
  });

  let lastCategories = null;
  function render(filters, categories, range, kept, total) {
    if (categories !== lastCategories) {
      lastCategories = categories;
      category.replaceChildren(
        h("option", { value: "", text: "all categories" }),
        ...(Array.isArray(categories) ? categories : []).map(([c, n]) => h("option", { value: String(c), text: `${c} (${Number(n).toLocaleString("en")})` })),
      );
    }
    category.value = filters?.categories?.[0] || "";
    from.value = filters?.date_from || "";
    to.value = filters?.date_to || "";
    if (document.activeElement !== keyword) keyword.value = filters?.keyword || "";
    if (Array.isArray(range) && range.length === 2) {
      for (const input of [from, to]) {
        input.min = range[0];
        input.max = range[1];
      }
    }
    const active = filters && (filters.categories?.length || filters.date_from || filters.date_to || filters.keyword);
    count.textContent = active ? `${Number(kept).toLocaleString("en")} of ${Number(total).toLocaleString("en")} papers match` : `${Number(total).toLocaleString("en")} papers`;
    el.dataset.kept = String(kept);
  }

  return { el, render };
}
