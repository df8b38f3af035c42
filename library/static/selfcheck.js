// The self-check page (/selfcheck) on a tablet by the door. The page works without this file
// (forms post, the server ends an idle session at the next tap); here only:
// - the scan field keeps the focus, so a USB scanner (which types and presses Enter) always
//   lands in it, whatever the reader touched last;
// - after data-idle-seconds without a tap, a key or a scan the reader's session ends (the
//   page posts its data-idle-end form), or a half-typed card and PIN are cleared.
(function () {
  var body = document.body;
  if (!body || !body.hasAttribute("data-selfcheck")) {
    return;
  }
  var seconds = parseInt(body.getAttribute("data-idle-seconds"), 10) || 60;
  var timer = null;

  function focusScan() {
    var field = document.querySelector("[data-keep-focus]");
    if (field && document.activeElement !== field) {
      field.focus();
    }
  }

  function expire() {
    var end = document.querySelector("form[data-idle-end]");
    if (end) {
      end.submit();
      return;
    }
    document.querySelectorAll("form[data-idle-reset]").forEach(function (form) {
      form.reset();
    });
    focusScan();
    restart();
  }

  function restart() {
    window.clearTimeout(timer);
    timer = window.setTimeout(expire, seconds * 1000);
  }

  ["keydown", "pointerdown", "touchstart", "input"].forEach(function (name) {
    document.addEventListener(name, restart, { passive: true });
  });

  // A tap on nothing in particular (not a field, a button or a link) gives the focus back.
  document.addEventListener("focusout", function () {
    window.setTimeout(function () {
      var active = document.activeElement;
      if (!active || active === body) {
        focusScan();
      }
    }, 0);
  });
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target instanceof Element && !target.closest("a, button, input, select, textarea, label")) {
      focusScan();
    }
  });

  focusScan();
  restart();
})();
