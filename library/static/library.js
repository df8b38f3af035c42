// Behaviour for the pages, from a file of our own: the Content-Security-Policy allows no
// inline script or on…= attribute (library/web/security.py).

// A button marked data-print prints the page (spine labels, loan slips, certificates).
document.addEventListener("click", function (event) {
  var target = event.target;
  if (target instanceof Element && target.closest("[data-print]")) {
    window.print();
  }
});
