// docgen's form editor: "Go to line N" selects that line in the source. Without this
// script the link shows the numbered lines beside the editor, which say the same.
"use strict";
document.querySelectorAll("a[data-line]").forEach(function (link) {
  link.addEventListener("click", function (event) {
    var area = document.getElementById("form-source");
    if (!area) { return; }
    var line = Number(link.dataset.line);
    var lines = area.value.split("\n");
    var start = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i++) { start += lines[i].length + 1; }
    event.preventDefault();
    area.focus();
    area.setSelectionRange(start, start + (lines[line - 1] || "").length);
    var height = parseFloat(getComputedStyle(area).lineHeight) || 20;
    area.scrollTop = Math.max(0, (line - 4) * height);
  });
});
