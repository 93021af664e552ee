// Keyward's only script: progressive enhancement. Every page works without
// it; with it, the new key gets a copy button.
"use strict";

(function () {
  // Selects the text of `el`, so that the user can copy it by hand.
  function select(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  // The old way, for browsers without the async Clipboard API (it needs a
  // secure context: https or localhost).
  function copyBySelection(el) {
    select(el);
    var ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (e) {
      ok = false;
    }
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copy(el) {
    var text = el.textContent.trim();
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () {
        return copyBySelection(el);
      });
    }
    return copyBySelection(el);
  }

  function enhance(button) {
    var target = document.getElementById(button.getAttribute("data-copy-target"));
    if (!target) return;
    var label = button.querySelector(".copy-label") || button;
    var status = document.querySelector(".copy-status");
    function say(message) {
      if (status) status.textContent = message;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      copy(target).then(
        function () {
          button.classList.add("is-copied");
          label.textContent = "Copied";
          say("The key is on your clipboard.");
        },
        function () {
          button.classList.remove("is-copied");
          label.textContent = "Copy";
          select(target);
          say("Copying was refused: the key is selected, press Ctrl+C (⌘C on a Mac) to copy it.");
        }
      );
    });
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-copy-target]"), enhance);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
