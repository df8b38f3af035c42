// The intake page's copy cataloguing: each catalogue's answer is fetched on its own and shown
// as it arrives, so a slow catalogue never holds up the others (library.catalog.sources.intake).
// Without JavaScript the page asks for all the answers at once instead (wait=1).
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-copy-src]").forEach(function (place) {
    var source = place.getAttribute("data-copy-src");
    function unanswered() {
      place.setAttribute("aria-busy", "false");
      var link = document.createElement("a");
      link.href = "?" + source.split("?")[1] + "&wait=1";
      link.textContent = place.getAttribute("data-copy-retry");
      place.appendChild(link);
    }
    fetch(source, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var holder = document.createElement("div");
        holder.innerHTML = html;
        var answer = holder.querySelector("[data-copy-answer]");
        if (answer) { place.replaceWith(answer); } else { unanswered(); }
      })
      .catch(unanswered);
  });
});
