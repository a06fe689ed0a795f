// Progressive enhancement of the print pages: while a job is active, the parts of the
// page marked `data-live` are fetched again every 2 s and swapped in place, so a form
// being filled in is not reloaded. Without JavaScript, a <noscript> meta refresh does it.
(function () {
  "use strict";
  var PERIOD = 2000;

  function tick() {
    var parts = document.querySelectorAll("[data-live][id]");
    if (!parts.length) return;
    fetch(location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok || response.redirected) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html");
        parts.forEach(function (part) {
          var next = fresh.getElementById(part.id);
          if (next) part.replaceWith(document.adoptNode(next));
        });
        setTimeout(tick, PERIOD);
      })
      .catch(function () {
        // Signed out, or the server is away: stop; a reload by the user shows why.
      });
  }

  setTimeout(tick, PERIOD);
})();
