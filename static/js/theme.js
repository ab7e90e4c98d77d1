// The top bar's theme buttons: the chosen theme applies at once, without a reload. The server
// remembers it (accounts:theme_set) and answers with the form, which names the theme in data-theme.
(function () {
  "use strict";

  document.addEventListener("htmx:afterSettle", function () {
    var form = document.getElementById("theme-toggle");
    if (form && form.dataset.theme) { document.documentElement.dataset.theme = form.dataset.theme; }
  });
})();
