// Refreshes the graphs every 10 s (the sampling interval). Everything else
// works without JavaScript.
(function () {
  "use strict";
  function refresh() {
    document.querySelectorAll("img[data-live]").forEach(function (img) {
      var u = new URL(img.src, location.href);
      u.searchParams.set("t", Date.now());
      img.src = u.toString();
    });
  }
  if (document.querySelector("img[data-live]")) setInterval(refresh, 10000);
})();
