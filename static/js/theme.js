// The theme buttons: the chosen theme applies at once, without a reload. The server remembers it
// (accounts:theme_set) and answers with the form, which names the theme in data-theme. The form is
// in the top bar and, on the chat page, in the conversations drawer too: the other one follows.
(function () {
  "use strict";

  document.addEventListener("htmx:afterSettle", function (event) {
    var answered = event.target;
    if (!(answered instanceof Element) || !answered.matches(".theme-toggle") || !answered.dataset.theme) { return; }
    var theme = answered.dataset.theme;
    document.documentElement.dataset.theme = theme;
    document.querySelectorAll(".theme-toggle").forEach(function (form) {
      form.dataset.theme = theme;
      form.querySelectorAll("button[name=theme]").forEach(function (button) {
        button.setAttribute("aria-pressed", button.value === theme ? "true" : "false");
      });
    });
  });
})();
