// clawbridge console: keeps each page live without a reload, and asks before destructive actions.
// The page's <main data-live="MS"> is fetched again every MS milliseconds from the same URL with
// ?fragment=1 (the server renders the same HTML); a lost session goes back to the login form.
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  var main = document.querySelector("main[data-live]");
  if (!main) {
    return;
  }
  var every = parseInt(main.getAttribute("data-live"), 10) || 5000;
  var live = document.getElementById("live");
  var busy = false;

  function openKeys() {
    var keys = {};
    main.querySelectorAll("details[data-key]").forEach(function (d) {
      keys[d.getAttribute("data-key")] = d.open;
    });
    return keys;
  }

  function restore(keys) {
    main.querySelectorAll("details[data-key]").forEach(function (d) {
      var key = d.getAttribute("data-key");
      if (Object.prototype.hasOwnProperty.call(keys, key)) {
        d.open = keys[key];
      }
    });
  }

  function refresh() {
    if (busy || document.hidden) {
      return;
    }
    busy = true;
    var url = new URL(window.location.href);
    url.searchParams.delete("notice");
    url.searchParams.set("fragment", "1");
    fetch(url.toString(), { credentials: "same-origin", redirect: "manual", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (response.type === "opaqueredirect" || response.status === 401) {
          window.location.href = "/console/login";
          return null;
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        if (html === null) {
          return;
        }
        var keys = openKeys();
        main.innerHTML = html;
        restore(keys);
        if (live) {
          live.textContent = "live · " + new Date().toLocaleTimeString();
          live.className = "";
        }
      })
      .catch(function () {
        if (live) {
          live.textContent = "offline: retrying";
          live.className = "bad";
        }
      })
      .finally(function () {
        busy = false;
      });
  }

  window.setInterval(refresh, every);
})();
