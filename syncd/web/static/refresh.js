// Reload the status page every data-refresh seconds, unless the reader is using a form
// control (typing a lookup, picking a folder): then try again a little later.
(function () {
  "use strict";
  var seconds = Number(document.body.getAttribute("data-refresh")) || 10;
  function tick() {
    var active = document.activeElement;
    if (active && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(active.tagName)) {
      window.setTimeout(tick, 2000);
      return;
    }
    window.location.reload();
  }
  window.setTimeout(tick, seconds * 1000);
})();
