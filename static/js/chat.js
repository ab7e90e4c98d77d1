// chatter's own script: Enter sends, and the newest message stays in view while a reply streams.
(function () {
  "use strict";

  function messageList() { return document.getElementById("message-list"); }

  function nearBottom(list) {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 120;
  }

  function scrollToEnd(force) {
    var list = messageList();
    if (list && (force || nearBottom(list))) { list.scrollTop = list.scrollHeight; }
  }

  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (box.name !== "content" || !box.form || box.form.id !== "composer") { return; }
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (box.value.trim()) { box.form.requestSubmit(); }
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "message-list") {
      var empty = document.getElementById("empty-chat");
      if (empty) { empty.remove(); }
      scrollToEnd(true);
    }
  });
  document.addEventListener("htmx:sseMessage", function () { scrollToEnd(false); });
  document.addEventListener("DOMContentLoaded", function () {
    scrollToEnd(true);
    // htmx set the page up in its own DOMContentLoaded handler, registered first: the page now
    // answers to Enter and Send. Tests wait for this mark rather than for time.
    document.documentElement.dataset.chatReady = "true";
  });
})();
