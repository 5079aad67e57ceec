// Live SMS segment count for any <textarea data-segments="ID">: asks the server, which uses the
// same bot.scripts_check.segments as `rapport scripts check`.
(function () {
  "use strict";
  function wire(area) {
    var out = document.getElementById(area.getAttribute("data-segments"));
    if (!out) return;
    var timer = null;
    var seq = 0;
    function update() {
      var mine = ++seq;
      fetch("/admin/scripts-preview?text=" + encodeURIComponent(area.value), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (p) {
          if (!p || mine !== seq) return;
          out.textContent = p.characters + " characters · " + p.encoding + " · " + p.segments +
            " SMS segment" + (p.segments === 1 ? "" : "s");
        })
        .catch(function () { /* the count stays as it was; saving still works */ });
    }
    area.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(update, 150);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var areas = document.querySelectorAll("textarea[data-segments]");
    for (var i = 0; i < areas.length; i++) wire(areas[i]);
  });
})();
