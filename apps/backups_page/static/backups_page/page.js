// The backups page's only script: busy states while a long request runs, and
// the typed-name confirmation of a restore. Everything works without it (the
// server checks the name and the password); this only makes waiting visible.
(function () {
  "use strict";

  function normalized(text) {
    return text.trim().replace(/\s+/g, " ").toLocaleLowerCase("es");
  }

  // Long operations (create, restore) run in the request for now: show that the
  // page is working and prevent a second submission. When backups become jobs,
  // this is where the page will poll the job's progress instead.
  function startBusy(form) {
    var status = form.querySelector(".busy");
    form.querySelectorAll("button[type=submit]").forEach(function (button) {
      button.disabled = true;
    });
    form.setAttribute("aria-busy", "true");
    if (status) {
      status.textContent = form.dataset.busy;
    }
  }

  document.querySelectorAll("form[data-busy]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      var maxSize = Number(form.dataset.maxSize || 0);
      var file = form.querySelector("input[type=file]");
      if (maxSize && file && file.files.length && file.files[0].size > maxSize) {
        event.preventDefault();
        alert("El archivo es demasiado grande para restaurarlo desde aquí.");
        return;
      }
      // Disabling the button in the same tick would drop it from the submission.
      window.setTimeout(function () { startBusy(form); }, 0);
    });
  });

  // The restore button is enabled once the clinic's name is typed as shown.
  document.querySelectorAll("form[data-confirm-name]").forEach(function (form) {
    var input = form.querySelector("input[name=confirm_name]");
    var button = form.querySelector("button[type=submit]");
    if (!input || !button) {
      return;
    }
    var expected = normalized(form.dataset.confirmName);
    function update() {
      var matches = normalized(input.value) === expected;
      button.disabled = !matches;
      button.setAttribute("aria-disabled", matches ? "false" : "true");
    }
    input.addEventListener("input", update);
    update();
  });
})();
