// The conversations sidebar: the drawer on narrow screens, the delete dialog, and Esc to cancel a rename.
(function () {
  "use strict";

  var narrow = window.matchMedia("(max-width: 720px)");

  function sidebar() { return document.getElementById("sidebar"); }
  function toggleButton() { return document.querySelector(".drawer-toggle"); }
  function chatMain() { return document.querySelector(".chat-main"); }
  function isOpen() { var bar = sidebar(); return !!bar && bar.classList.contains("is-open"); }

  // The drawer --------------------------------------------------------------------------------
  function setDrawer(open, returnFocus) {
    var bar = sidebar(), toggle = toggleButton(), main = chatMain();
    if (!bar || !toggle) { return; }
    open = open && narrow.matches;
    bar.classList.toggle("is-open", open);
    document.body.classList.toggle("drawer-open", open);
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (main) { main.inert = open; }  // the chat behind the drawer takes neither focus nor clicks
    if (open) {
      var first = bar.querySelector("#conversation-list a[aria-current=page]") || bar.querySelector(".new-chat");
      if (first) { first.focus(); }
    } else if (returnFocus) {
      toggle.focus();
    }
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) { return; }
    if (target.closest(".drawer-toggle")) { setDrawer(!isOpen(), false); return; }
    if (!isOpen()) { return; }
    if (target.closest("[data-drawer-close]")) { setDrawer(false, true); return; }
    if (target.closest("#sidebar .item-link")) { setDrawer(false, false); return; }  // a conversation chosen
    if (!target.closest("#sidebar")) { setDrawer(false, true); }  // a click outside
  });

  narrow.addEventListener("change", function () { if (!narrow.matches) { setDrawer(false, false); } });

  // Rename: Esc or Cancel puts the row (or the header) back as it was -----------------------
  function cancelRename(form) {
    var slot = form.closest(".rename-slot");
    var owner = slot && (slot.closest(".conversation-item") || slot.closest("#chat-title"));
    if (slot) { slot.replaceChildren(); } else { form.remove(); }
    var button = owner && owner.querySelector(".item-actions .icon-button, .title-rename");
    if (button) { button.focus(); }
  }

  document.addEventListener("click", function (event) {
    var cancel = event.target instanceof Element && event.target.closest("[data-rename-cancel]");
    if (cancel) { cancelRename(cancel.closest("form")); }
  });

  // Esc closes the innermost thing first: a rename, else the drawer; only then (chat.js) the reply.
  // Listened for while the event goes down (capture), so chat.js's listener never sees one handled here.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || event.isComposing) { return; }
    var form = event.target instanceof Element && event.target.closest(".rename-form");
    if (form) {
      cancelRename(form);
    } else if (!document.querySelector("dialog[open]") && isOpen()) {  // an open dialog closes itself first
      setDrawer(false, true);
    } else {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
  }, true);

  // A new title: the sidebar's row says it too when the header was renamed, and so does the tab.
  document.addEventListener("conversationRenamed", function (event) {
    var detail = event.detail || {};
    var item = document.getElementById("conversation-title-" + detail.id);
    if (item) { item.textContent = detail.title; }
    var header = document.querySelector('.title-rename[data-conversation="' + CSS.escape(detail.id || "") + '"]');
    if (header) { document.title = detail.title + " · chatter"; }
  });

  // Delete: the server sends the dialog; it opens as a modal and goes away when closed --------
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (!target || target.id !== "dialog-slot") { return; }
    var dialog = target.querySelector("dialog");
    if (!dialog) {  // deleted: the dialog and the row are gone
      var next = document.querySelector("#conversation-list .item-link") || document.querySelector("#sidebar .new-chat");
      if (next) { next.focus(); }
      return;
    }
    var opener = event.detail.requestConfig && event.detail.requestConfig.elt;
    dialog.addEventListener("close", function () {
      dialog.remove();
      if (opener && opener.isConnected) { opener.focus(); }
    });
    dialog.showModal();
  });

  // Pin or archive from a row: the answer is a new list (out of band), so the button pressed is
  // gone. The focus stays with the row (pinned or unpinned: the same button, which now says the
  // other), or, archived, goes to the row that took its place (the last row, or the search box).
  var arranging = new WeakMap();  // a row's button pressed -> where it was
  var refocus = null;  // that place, once a new list has come
  document.addEventListener("htmx:beforeRequest", function (event) {
    var button = event.detail.elt;
    var actions = button instanceof Element && button.closest("#conversation-list .item-actions");
    if (!actions) { return; }
    var row = actions.closest(".conversation-item");
    var rows = Array.prototype.slice.call(document.querySelectorAll("#conversation-list .conversation-item"));
    arranging.set(button, { id: row.id, button: Array.prototype.indexOf.call(actions.children, button), row: rows.indexOf(row) });
  });
  // The button is gone with the old list, so htmx tells the nearest element still in the page
  // (detail.elt); requestConfig.elt is the button.
  document.addEventListener("htmx:afterRequest", function (event) {
    var button = event.detail.requestConfig && event.detail.requestConfig.elt;
    var was = button && arranging.get(button);
    if (was && !button.isConnected) { refocus = was; }  // else no new list (a rename, a dialog, or refused)
  });
  // Settled: htmx has set up the new list's buttons (a key pressed before that would do nothing).
  document.addEventListener("htmx:afterSettle", function () {
    var was = refocus;
    refocus = null;
    if (!was) { return; }
    var row = document.getElementById(was.id);
    var target = row && row.querySelector(".item-actions").children[was.button];
    if (!target) {
      var links = document.querySelectorAll("#conversation-list .conversation-item .item-link");
      target = links[Math.min(was.row, links.length - 1)] || document.getElementById("conversation-search");
    }
    if (target) { target.focus(); }
  });

  // Tests wait for this mark, not for time.
  document.documentElement.dataset.sidebarReady = "true";
})();
