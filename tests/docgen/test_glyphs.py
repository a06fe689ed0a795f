"""Every character the built-in forms print has a glyph (issue 16, item 10).

Typst does not warn about a character none of its fonts has: it prints the font's
missing-glyph box (`.notdef`, glyph 0). Its PDFs write text in Type0 fonts with
two-byte codes that are glyph IDs (Identity-H), so a box shows as the code 0 in a
`Tj`/`TJ` string of a page's content stream; `notdef_codes` counts them.
"""

from __future__ import annotations

import re
import zlib

import pytest
import typst

from printcloud.docgen import forms
from printcloud.docgen.forms.compiler import embedded_fonts

_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.S)
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _strings(content: bytes) -> list[bytes]:
    """The literal strings shown by `Tj`/`TJ` in a content stream, unescaped."""
    shown: list[bytes] = []
    i = 0
    pending: list[bytes] = []
    while i < len(content):
        c = content[i : i + 1]
        if c == b"(":
            depth, i, out = 1, i + 1, bytearray()
            while depth and i < len(content):
                c = content[i : i + 1]
                if c == b"\\":
                    nxt = content[i + 1 : i + 2]
                    octal = re.match(rb"[0-7]{1,3}", content[i + 1 : i + 4])
                    if octal:
                        out.append(int(octal.group(), 8) & 0xFF)
                        i += 1 + len(octal.group())
                        continue
                    out += _ESCAPES.get(nxt, nxt)
                    i += 2
                    continue
                depth += {b"(": 1, b")": -1}.get(c, 0)
                if depth:
                    out += c
                i += 1
            pending.append(bytes(out))
            continue
        if content.startswith((b"Tj", b"TJ"), i):
            shown += pending
        if content.startswith((b"Tj", b"TJ", b"Tf", b"Tm", b"BDC"), i):
            pending = []
        i += 1
    return shown


def notdef_codes(pdf: bytes) -> int:
    """How many missing-glyph boxes a Typst PDF prints."""
    count = 0
    for match in _STREAM.finditer(pdf):
        try:
            content = zlib.decompress(match.group(1))
        except zlib.error:
            continue  # not a Flate stream
        if b"BT" not in content or not re.search(rb"T[jJ]\s", content + b"\n"):
            continue  # not a page's text: a font program, an image, metadata
        for shown in _strings(content):
            count += sum(1 for k in range(0, len(shown) - 1, 2) if shown[k : k + 2] == b"\0\0")
    return count


def _typst_pdf(text: str) -> bytes:
    compiler = typst.Compiler(font_paths=embedded_fonts(), ignore_system_fonts=True)
    pdf = compiler.compile(input=text.encode(), format="pdf")
    assert isinstance(pdf, bytes)
    return pdf


def test_the_check_sees_a_missing_glyph_box() -> None:
    """The check would catch one: a character none of Typst's fonts has is counted,
    the same text without it is not."""
    assert notdef_codes(_typst_pdf("printcloud demo — page 1 (Zürich, 80 g/m²)")) == 0
    assert notdef_codes(_typst_pdf("printcloud demo 中 page 1")) == 1
    assert notdef_codes(_typst_pdf('#set text(font: "DejaVu Sans Mono")\nAB 中文 (x)')) == 2


@pytest.mark.parametrize("name", forms.BUILTIN_FORMS)
def test_the_built_in_forms_print_every_character(name: str) -> None:
    """With their sample data — dashes, quotes, umlauts, accents, superscripts — the
    built-in forms print no missing-glyph box."""
    form = forms.builtin_form(name)
    pdf = forms.render(name, form.sample)
    assert notdef_codes(pdf) == 0
    # and the check reads these PDFs: the same form with a character it lacks is caught
    data = dict(form.sample)
    data["company"] = {**data["company"], "name": "Northwind 中 GmbH"}
    assert notdef_codes(forms.render(name, data)) >= 1
