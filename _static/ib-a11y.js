/* Accessibility repairs of the theme's markup (pydata-sphinx-theme / sphinx-book-theme), found by the
 * axe-core audit of the browser test (tests/test_browser.py). jupyter-book adds every script in
 * _static/ to every page, in the <head>: the repairs run once the document is parsed, and again
 * after the load event for what Font Awesome rewrites in between. */
(function () {
  "use strict";

  function repair() {
    // The search field shows "Search Ctrl+K" but was named "Search" by aria-label: a speech-input
    // user saying what they see would not match it (WCAG 2.5.3, axe label-content-name-mismatch).
    // Without the aria-label its name is its visible text.
    document.querySelectorAll(".search-button-field[aria-label]").forEach(function (b) {
      if (b.textContent.trim()) b.removeAttribute("aria-label");
    });
    // The colour-mode button is named "Color mode"; its icons carried titles ("Light", "Dark",
    // "System Settings") that became visible text not contained in that name. The icons are
    // decorative: hide them from assistive technology, before and after Font Awesome's rewrite.
    document.querySelectorAll(".theme-switch-button i, .theme-switch-button svg").forEach(function (i) {
      i.removeAttribute("title");
      i.removeAttribute("aria-labelledby");
      i.querySelectorAll("title").forEach(function (t) { t.remove(); });
      i.setAttribute("aria-hidden", "true");
    });
    // The book's title at the top of the left sidebar sat outside every landmark (axe region):
    // the sidebar becomes a labelled complementary region around the theme's own navigation.
    var sidebar = document.getElementById("pst-primary-sidebar");
    if (sidebar && !sidebar.hasAttribute("role")) {
      sidebar.setAttribute("role", "complementary");
      sidebar.setAttribute("aria-label", "Book contents and search");
    }
  }

  // The theme makes a table container focusable (tabindex 0) when the table overflows it, so that a
  // keyboard can scroll it, but gives it no role (axe focus-order-semantics). A container that
  // scrolls becomes a region named after the table's caption, or else its section's heading; one
  // that stops scrolling (tabindex -1, on a wider window) loses the role again.
  function label(c) {
    var cap = c.querySelector("caption");
    var text = cap ? cap.textContent : "";
    if (!text.trim()) {
      var section = c.closest("section");
      var h = section ? section.querySelector("h1, h2, h3, h4, h5, h6") : null;
      text = h ? h.textContent : "";
    }
    text = text.replace(/[#¶]/g, "").replace(/\s+/g, " ").trim();
    return (text ? text + ": " : "") + "table, scrolls sideways";
  }

  function nameScrollingTables() {
    document.querySelectorAll(".pst-scrollable-table-container[tabindex]").forEach(function (c) {
      if (c.getAttribute("tabindex") === "0") {
        if (!c.hasAttribute("role")) {
          // landmarks need distinct names (axe landmark-unique): a second table under the same
          // heading is numbered
          var name = label(c), k = 1, taken = function (n) {
            return Array.prototype.some.call(document.querySelectorAll("[role=region][aria-label]"),
              function (r) { return r.getAttribute("aria-label") === n; });
          };
          while (taken(k === 1 ? name : name + " " + k)) k += 1;
          c.setAttribute("role", "region");
          c.setAttribute("aria-label", k === 1 ? name : name + " " + k);
        }
      } else if (c.getAttribute("role") === "region") {
        c.removeAttribute("role");
        c.removeAttribute("aria-label");
      }
    });
  }

  function watchTables() {
    nameScrollingTables();
    var main = document.getElementById("main-content") || document.body;
    new MutationObserver(nameScrollingTables).observe(main, {
      subtree: true, attributes: true, attributeFilter: ["tabindex"],
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", repair);
  else repair();
  window.addEventListener("load", repair);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", watchTables);
  else watchTables();
})();
