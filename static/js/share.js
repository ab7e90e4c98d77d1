// Share links (actions_share.html): a link's Copy puts it on the clipboard and says "Copied" for
// 2 s (or "Not copied"), in the #copy-status live region too, for screen readers.
(function () {
  "use strict";

  var SAID_FOR_MS = 2000;

  function say(button, label) {
    var status = document.getElementById("copy-status");
    clearTimeout(Number(button.dataset.timer));
    button.textContent = label;
    if (status) { status.textContent = label === "Copied" ? "Link copied to the clipboard." : "The link could not be copied."; }
    button.dataset.timer = String(setTimeout(function () { button.textContent = "Copy"; }, SAID_FOR_MS));
  }

  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest("button.copy-link") : null;
    if (!button) { return; }
    if (!navigator.clipboard) { say(button, "Not copied"); return; }
    navigator.clipboard.writeText(button.dataset.link || "").then(
      function () { say(button, "Copied"); },
      function () { say(button, "Not copied"); }
    );
  });
})();
