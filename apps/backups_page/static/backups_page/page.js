// The backups page's only script: busy states while a long request runs, the
// typed-name confirmation of a restore, and a job's live progress (polling its
// state). Everything works without it (the server checks the name and the
// password; a job's page reloads itself); this only makes waiting visible.
(function () {
  "use strict";

  function normalized(text) {
    return text.trim().replace(/\s+/g, " ").toLocaleLowerCase("es");
  }

  // Without a broker, long operations (create, restore) run in the request: show
  // that the page is working and prevent a second submission. With one, the
  // request only queues the job, and the job's page follows it (below).
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

  // A job's page: poll its state about once a second until it ends.
  var job = document.getElementById("tarea");
  if (job && job.dataset.status !== "succeeded" && job.dataset.status !== "failed") {
    followJob(job);
  }

  function megabytes(bytes) {
    return (bytes / 1048576).toLocaleString("es", { maximumFractionDigits: 1 }) + " MB";
  }

  function field(root, name) {
    return root.querySelector("[data-field=" + name + "]");
  }

  function message(kind, nodes) {
    var p = document.createElement("p");
    p.className = "message " + kind;
    p.setAttribute("role", kind === "error" ? "alert" : "status");
    nodes.forEach(function (node) {
      p.appendChild(typeof node === "string" ? document.createTextNode(node) : node);
    });
    return p;
  }

  function link(href, text) {
    var a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    a.className = "button";
    return a;
  }

  function showResult(root, nodes) {
    var result = field(root, "result");
    result.replaceChildren.apply(result, nodes);
  }

  function render(root, state) {
    var progress = root.querySelector("progress");
    root.dataset.status = state.status;
    field(root, "status_label").textContent = state.status_label;
    field(root, "phase_sep").textContent = state.status === "running" ? ": " : "";
    field(root, "phase_label").textContent = state.status === "running" ? state.phase_label : "";
    root.querySelector(".job-state").className = "job-state status-" + state.status;
    if (state.percent === null && state.status === "failed") {
      progress.value = 0; // without a value it would still be drawn as work going on
    } else if (state.percent === null) {
      progress.removeAttribute("value");
    } else {
      progress.value = state.percent;
      progress.textContent = state.percent + " %";
    }
    field(root, "figures").textContent = state.bytes_total
      ? megabytes(state.bytes_done) + " de " + megabytes(state.bytes_total)
      : (state.bytes_done ? megabytes(state.bytes_done) : "");
    if (state.status === "failed") {
      var prefix = root.dataset.kind === "restore" ? "No se restauró nada: " : "";
      showResult(root, [message("error", [prefix + state.error])]);
    } else if (state.status === "succeeded" && state.backup_info) {
      var size = megabytes(state.backup_info.file_size);
      showResult(root, [message("success", ["Backup creado: " + state.backup_info.file_name + " (" + size + ")."])]);
    } else if (state.status === "succeeded" && state.restore_info) {
      restoreEnded(root, "La clínica volvió al estado del backup " + state.restore_info.backup_file_name + ".", null);
    }
  }

  function restoreEnded(root, text, signInUrl) {
    root.dataset.status = "succeeded";
    field(root, "status_label").textContent = "Completado";
    field(root, "phase_sep").textContent = "";
    field(root, "phase_label").textContent = "";
    var progress = root.querySelector("progress");
    progress.value = 100;
    showResult(root, [
      message("success", [text + " Las sesiones anteriores se cerraron, también la tuya."]),
      link(signInUrl || root.dataset.signInUrl, "Volver a iniciar sesión"),
    ]);
  }

  function followJob(root) {
    var url = root.dataset.statusUrl;
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          return response.json().then(function (body) {
            return { status: response.status, body: body };
          });
        })
        .then(function (reply) {
          if (reply.status === 401 && reply.body.session_ended_by_restore) {
            // A restore ends every session only when it succeeds: this one has.
            restoreEnded(root, "La clínica se restauró.", reply.body.sign_in_url);
            return;
          }
          if (reply.status !== 200) {
            showResult(root, [message("error", [reply.body.error || "No se pudo consultar la tarea."])]);
            return;
          }
          render(root, reply.body);
          if (reply.body.status !== "succeeded" && reply.body.status !== "failed") {
            window.setTimeout(poll, 1000);
          }
        })
        .catch(function () {
          // The server did not answer (a restart, the network): try again a little later.
          window.setTimeout(poll, 3000);
        });
    }
    window.setTimeout(poll, 500);
  }
})();
