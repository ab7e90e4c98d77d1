// chatter's own script: Enter sends, Esc stops the reply being written, the box counts its
// characters near the limit, the newest message stays in view while a reply streams (unless the
// user scrolled up: then "Jump to newest"), and replies and code blocks have Copy buttons.
(function () {
  "use strict";

  function messageList() { return document.getElementById("message-list"); }

  function nearBottom(list) {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 120;
  }

  // The list follows new text while its end is in view. Scrolling up stops that and shows
  // "Jump to newest"; scrolling back down (or the button, or a reply ending) starts it again.
  var following = true;

  function syncJump() {
    var list = messageList(), jump = document.getElementById("jump-newest");
    if (list && jump) { jump.hidden = following || nearBottom(list); }
  }

  function scrollToEnd(force) {
    var list = messageList();
    if (!list) { return; }
    if (force) { following = true; }
    if (following) { list.scrollTop = list.scrollHeight; }
    syncJump();
  }

  // Any move up is the user's (the script only scrolls down); the very end, or near it on the way
  // down, follows again. A bubble swapped for a shorter one pulls the list up to its end: following.
  var lastTop = 0;
  document.addEventListener("scroll", function (event) {
    var list = messageList();
    if (event.target !== list) { return; }
    var top = list.scrollTop;
    if (list.scrollHeight - top - list.clientHeight < 2) { following = true; }
    else if (top < lastTop) { following = false; }
    else if (nearBottom(list)) { following = true; }
    lastTop = top;
    syncJump();
  }, true);  // scroll events do not bubble: caught on the way down
  document.addEventListener("click", function (event) {
    if (!event.target.closest("#jump-newest")) { return; }
    scrollToEnd(true);
    var list = messageList();
    if (list) { list.focus({ preventScroll: true }); }  // the button hides: the focus goes to the list
  });

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
  // A reply that finished, stopped or failed brings the list to its end, now and again once the
  // finished bubble has replaced the streaming one (the close comes before that swap).
  document.addEventListener("htmx:sseClose", function () { replyEnded(); scrollToEnd(true); });
  document.addEventListener("htmx:afterSettle", function () {
    syncComposer();
    addCodeCopyButtons();
    scrollToEnd(false);
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    syncComposer();
    if (event.detail.target && event.detail.target.id === "message-list") {
      var empty = document.getElementById("empty-chat");
      if (empty) { empty.remove(); }
      scrollToEnd(true);
    }
  });
  document.addEventListener("htmx:sseMessage", function () { scrollToEnd(false); });

  // Earlier messages go in above the ones on screen: the list keeps its distance from the end, so
  // what the user was reading stays where it was (Chromium's scroll anchoring does not at the very
  // top). Not a move of the user's: `following` stays as it was.
  var fromEnd = null;
  function earlierPage(event) {  // the swap's target: afterSwap's elt is each new element
    return Boolean(event.detail.target && event.detail.target.classList.contains("earlier-messages"));
  }
  document.addEventListener("htmx:beforeSwap", function (event) {
    var list = messageList();
    if (list && earlierPage(event)) { fromEnd = list.scrollHeight - list.scrollTop; }
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    var list = messageList();
    if (list && fromEnd !== null && earlierPage(event)) {
      list.scrollTop = list.scrollHeight - fromEnd;
      fromEnd = null;
    }
  });
  // Copy --------------------------------------------------------------------------------------
  // A finished reply's Copy copies its Markdown source (the escaped text in its <template>); each
  // code block gets a "Copy code" button here. Either says "Copied" for 2 s, and so does the
  // #copy-status live region, for screen readers.
  // A code block's button lives in the block's shadow tree (styled through ::part): everything under
  // .content.markdown stays what the server rendered from the model's text, within the bleach
  // allowlist (test_browser_xss checks exactly that in the page).
  var COPIED_FOR_MS = 2000;

  function addCodeCopyButtons() {
    document.querySelectorAll("#message-list .content.markdown .code-block").forEach(function (block) {
      if (block.shadowRoot) { return; }
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy-button copy-code";
      button.setAttribute("part", "copy-code");
      button.textContent = "Copy code";
      block.attachShadow({ mode: "open" }).append(button, document.createElement("slot"));
    });
  }

  function copiedText(button) {
    if (button.classList.contains("copy-code")) {
      var code = button.getRootNode().host.querySelector("pre");
      return code ? code.textContent.replace(/\n$/, "") : "";
    }
    var source = button.closest("article").querySelector("template.reply-source");
    return source ? source.content.textContent : "";
  }

  function showCopied(button, label, said) {
    var status = document.getElementById("copy-status");
    if (!button.dataset.label) { button.dataset.label = button.textContent; }
    clearTimeout(Number(button.dataset.timer));
    button.textContent = label;
    button.classList.toggle("copied", label === "Copied");
    if (button.classList.contains("copy-code")) { button.setAttribute("part", label === "Copied" ? "copy-code copied" : "copy-code"); }
    if (status) { status.textContent = said; }
    button.dataset.timer = String(setTimeout(function () {
      button.textContent = button.dataset.label;
      button.classList.remove("copied");
      if (button.classList.contains("copy-code")) { button.setAttribute("part", "copy-code"); }
      if (status && status.textContent === said) { status.textContent = ""; }
    }, COPIED_FOR_MS));
  }

  document.addEventListener("click", function (event) {
    // composedPath: a code block's button is inside its shadow tree (the event's target is the block).
    var button = event.composedPath().find(function (node) {
      return node instanceof Element && node.matches("button.copy-button");
    });
    if (!button || !messageList() || !messageList().contains(button.getRootNode().host || button)) { return; }
    var what = button.classList.contains("copy-code") ? "Code" : "Reply";
    var done = function () { showCopied(button, "Copied", what + " copied to the clipboard."); };
    var failed = function () { showCopied(button, "Not copied", what + " could not be copied."); };
    if (!navigator.clipboard) { failed(); return; }
    navigator.clipboard.writeText(copiedText(button)).then(done, failed);
  });

  // Menus (a reply's Regenerate, the header's ⋯) are <details>: Esc closes an open one (its
  // summary keeps the focus), as does a click outside it, except in a dialog the menu opened (its
  // Share…), whose closing gives the focus back to the menu's item; Esc in a message being edited
  // cancels the edit. Listened for while the event goes down, so that Esc stops no reply meanwhile.
  var MENUS = "details.regenerate[open], details.conversation-actions[open]";
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || event.isComposing || document.querySelector("dialog[open]")) { return; }
    var menu = document.querySelector(MENUS);
    var editing = event.target instanceof Element && event.target.closest(".edit-form");
    if (menu) {
      menu.open = false;
      menu.querySelector("summary").focus();
    } else if (editing) {
      editing.querySelector("[data-edit-cancel]").click();
    } else {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
  }, true);
  document.addEventListener("click", function (event) {
    document.querySelectorAll(MENUS).forEach(function (menu) {
      if (!menu.contains(event.target) && !event.target.closest("dialog[open]")) { menu.open = false; }
    });
  });

  // Pin, archive or restore from the header: the answer replaces the header (out of band), and
  // with it the button pressed. The focus goes to the new header's menu button (the menu closed),
  // once htmx has settled it, instead of falling to the page.
  var headerRefocus = false;
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (form && !form.isConnected && form.closest(".conversation-actions, .archived-notice")) { headerRefocus = true; }
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!headerRefocus) { return; }
    headerRefocus = false;
    var summary = document.querySelector("#conversation-actions > summary");
    if (summary) { summary.focus(); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    addCodeCopyButtons();
    scrollToEnd(true);
    syncComposer();
    countCharacters();
    // htmx set the page up in its own DOMContentLoaded handler, registered first: the page now
    // answers to Enter and Send. Tests wait for this mark rather than for time.
    document.documentElement.dataset.chatReady = "true";
  });
})();
