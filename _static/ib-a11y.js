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

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", repair);
  else repair();
  window.addEventListener("load", repair);
})();
