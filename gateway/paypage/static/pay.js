// Follows the attempt without reloading: polls the status JSON every 3 s, doubling the wait after an
// error (up to 30 s), stopping on a final state or after 15 minutes. Without JavaScript the page
// refreshes itself instead (a meta refresh inside <noscript>).
(function () {
  "use strict";
  var body = document.body, url = body.getAttribute("data-status-url");
  if (!url || body.getAttribute("data-poll") !== "yes") { return; }
  var BASE = 3000, MAX = 30000, GIVE_UP = 15 * 60 * 1000, started = Date.now(), wait = BASE;

  function settled() {
    var live = document.getElementById("live");
    if (live) { live.hidden = true; }
    return true;
  }

  function gaveUp() {
    var live = document.getElementById("live");
    if (live) {
      live.textContent = document.documentElement.lang === "sw" ?
        "Fungua upya ukurasa huu kuona hali ya sasa." : "Reload this page to see the latest status.";
    }
  }

  function show(state) {
    document.getElementById("status").textContent = state.status_message;
    var a = state.attempt, result = document.getElementById("result"), form = document.getElementById("payform");
    if (!a) { return false; }
    if (a.paid || state.status === "PAID") {
      result.className = "paid";
      result.textContent = "";
      result.appendChild(document.createTextNode(document.documentElement.lang === "sw" ?
        "Imelipwa — Risiti ya M-Pesa " : "Paid — M-Pesa receipt "));
      var b = document.createElement("b");
      b.textContent = a.receipt || (state.transaction && state.transaction.id) || "";
      result.appendChild(b);
      form.hidden = true;
      return settled();
    }
    if (a.failed) {
      result.className = "failed";
      result.textContent = a.message;
      form.querySelector("button").textContent = document.documentElement.lang === "sw" ? "Jaribu tena" : "Try again";
      form.hidden = state.final;
      return settled();
    }
    return state.final && settled();
  }

  function poll() {
    if (Date.now() - started > GIVE_UP) { gaveUp(); return; }
    var xhr = new XMLHttpRequest();
    xhr.open("GET", url);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.onload = function () {
      if (xhr.status === 200) {
        wait = BASE;
        if (show(JSON.parse(xhr.responseText))) { return; }
      } else {
        wait = Math.min(wait * 2, MAX);
      }
      setTimeout(poll, wait);
    };
    xhr.onerror = function () { wait = Math.min(wait * 2, MAX); setTimeout(poll, wait); };
    xhr.send();
  }
  setTimeout(poll, wait);
}());
