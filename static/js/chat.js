// chatter's own script: Enter sends, Esc stops the reply being written, the box counts its
// characters near the limit, and the newest message stays in view while a reply streams.
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

  function box() { return document.querySelector("#composer textarea[name=content]"); }

  // The Stop button of the reply being written, if one is.
  function liveStop() { return document.querySelector("#message-list .stream button.stop"); }

  // While a reply streams, the composer's Send becomes Stop (it presses the reply's own Stop).
  function syncComposer() {
    var composer = document.getElementById("composer");
    if (composer) { composer.classList.toggle("replying", Boolean(liveStop())); }
  }

  // Near the limit the box says how many characters it holds; over it, Send is refused here
  // as the server would refuse it, with the number, and nothing is cut.
  function countCharacters() {
    var field = box(), counter = document.getElementById("char-count");
    if (!field || !counter) { return; }
    var limit = Number(field.dataset.maxLength), length = field.value.length;
    var over = length > limit;
    counter.hidden = length < limit * 0.9;
    counter.classList.toggle("over", over);
    counter.textContent = length.toLocaleString("en") + " / " + limit.toLocaleString("en") + " characters" +
      (over ? ": " + (length - limit).toLocaleString("en") + " too many" : "");
    var send = document.querySelector("#composer button.send");
    if (send) { send.disabled = over; }
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && liveStop() && !document.querySelector("dialog[open]")) {
      event.preventDefault();
      liveStop().click();
      return;
    }
    var field = event.target;
    if (field.name !== "content" || !field.form || field.form.id !== "composer") { return; }
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      var send = field.form.querySelector("button.send");
      if (field.value.trim() && !(send && send.disabled)) { field.form.requestSubmit(); }
    }
  });
  document.addEventListener("input", function (event) {
    if (event.target.name === "content") { countCharacters(); }
  });
  // The chosen model's description, under the picker.
  document.addEventListener("change", function (event) {
    if (event.target.name !== "model" || !event.target.form || event.target.form.id !== "composer") { return; }
    var hint = document.getElementById("model-description");
    var chosen = event.target.selectedOptions[0];
    if (hint) { hint.textContent = chosen ? chosen.dataset.description || "" : ""; }
  });
  document.addEventListener("click", function (event) {
    if (event.target.closest("#composer button.stop-reply") && liveStop()) { liveStop().click(); }
  });

  // What was typed while a message was on its way stays in the new box, and so does the focus.
  var sending = null, typedSince = "";
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.elt.id === "composer") { sending = box() ? box().value : null; }
  });
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    if (event.detail.target.id !== "composer" || sending === null) { return; }
    var typed = box() ? box().value : "";
    typedSince = typed.indexOf(sending) === 0 ? typed.slice(sending.length).replace(/^\s+/, "") : typed;
  });
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    if (event.detail.target.id !== "composer") { return; }
    var field = box();
    if (field && typedSince) { field.value = typedSince; }
    if (field) { field.focus(); }
    sending = null;
    typedSince = "";
    countCharacters();
  });

  // A reply that ended makes "a reply is still being written" untrue: the note goes.
  function replyEnded() {
    document.querySelectorAll("#composer .errorlist.nonfield li").forEach(function (item) {
      if (item.textContent.indexOf("still being written") !== -1) { item.remove(); }
    });
    document.querySelectorAll("#composer .errorlist.nonfield").forEach(function (list) {
      if (!list.children.length) { list.remove(); }
    });
  }
  document.addEventListener("htmx:sseClose", function () { replyEnded(); scrollToEnd(true); });
  document.addEventListener("htmx:afterSettle", syncComposer);

  document.addEventListener("htmx:afterSwap", function (event) {
    syncComposer();
    if (event.detail.target && event.detail.target.id === "message-list") {
      var empty = document.getElementById("empty-chat");
      if (empty) { empty.remove(); }
      scrollToEnd(true);
    }
  });
  document.addEventListener("htmx:sseMessage", function () { scrollToEnd(false); });
  document.addEventListener("DOMContentLoaded", function () {
    scrollToEnd(true);
    syncComposer();
    countCharacters();
    // htmx set the page up in its own DOMContentLoaded handler, registered first: the page now
    // answers to Enter and Send. Tests wait for this mark rather than for time.
    document.documentElement.dataset.chatReady = "true";
  });
})();
