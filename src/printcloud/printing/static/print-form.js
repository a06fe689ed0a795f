// Progressive enhancement of the print form: the color choice follows the chosen
// printer. A printer without color (its option's data-color="false") offers only
// "Black and white"; choosing a color printer again offers both and restores the
// person's last own choice. Without JavaScript the form offers both, and the print
// service prints a color request for a black-and-white printer in black and white,
// saying so on the job's page.
(function () {
  "use strict";
  var printer = document.getElementById("printer_id");
  var color = document.getElementById("color");
  var hint = document.getElementById("color-hint");
  if (!printer || !color) return;
  var inColor = color.querySelector('option[value="color"]');
  if (!inColor) return;
  // The server picks black and white for a black-and-white printer it preselects: the
  // person's own choice is color until they choose otherwise.
  var first = printer.options[printer.selectedIndex];
  var wanted = first && first.getAttribute("data-color") === "false" ? "color" : color.value;

  function follow() {
    var option = printer.options[printer.selectedIndex];
    var mono = option && option.getAttribute("data-color") === "false";
    inColor.disabled = mono;
    inColor.hidden = mono;
    color.value = mono ? "mono" : wanted;
    if (hint) hint.hidden = !mono;
  }

  color.addEventListener("change", function () {
    wanted = color.value;
  });
  printer.addEventListener("change", follow);
  follow();
})();
