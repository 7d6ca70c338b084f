// Close an open drop-down menu when the user clicks elsewhere or presses Escape.
document.addEventListener("click", function (event) {
  document.querySelectorAll("details.menu[open]").forEach(function (menu) {
    if (!menu.contains(event.target)) { menu.removeAttribute("open"); }
  });
});
document.addEventListener("keydown", function (event) {
  if (event.key === "Escape") {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) { menu.removeAttribute("open"); });
  }
});

// The copy button of a new API key's secret (shown once, on the page answering its creation).
document.addEventListener("DOMContentLoaded", function () {
  var button = document.getElementById("copy-key");
  var input = document.getElementById("new-key-secret");
  var status = document.getElementById("copy-status");
  if (!button || !input) { return; }
  input.addEventListener("focus", function () { input.select(); });
  button.addEventListener("click", function () {
    function done() { button.textContent = "Copied"; if (status) { status.textContent = "The key is on your clipboard."; } }
    input.select();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
  });
});
