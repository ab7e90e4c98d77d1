// Counts down "You can ask for another in N seconds" and keeps the button that waits for it
// disabled until then. Without this script the server still refuses, saying how long to wait.
(function () {
  "use strict";

  function start(hint) {
    var deadline = Date.now() + Number(hint.dataset.countdown) * 1000;
    var seconds = hint.querySelector(".seconds");
    var buttons = document.querySelectorAll('[data-wait-for="' + hint.id + '"]');
    buttons.forEach(function (button) { button.disabled = true; });

    function tick() {
      var left = Math.ceil((deadline - Date.now()) / 1000);
      if (left > 0) {
        seconds.textContent = String(left);
        seconds.nextSibling.textContent = left === 1 ? " second." : " seconds.";
        return;
      }
      clearInterval(timer);
      hint.textContent = "You can ask for another now.";
      buttons.forEach(function (button) { button.disabled = false; });
    }
    var timer = setInterval(tick, 250);
    tick();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-countdown]").forEach(start);
  });
})();
