"""The demo's brochure prints its text with glyphs its font has (issue 16, item 10: its
title showed "printcloud demo ▯ page 1", a dash Pillow's built-in font lacks)."""

from __future__ import annotations

from printcloud.demo.printing import brochure_font, brochure_text, make_brochure, missing_glyphs


def test_the_check_sees_what_the_font_lacks() -> None:
    font = brochure_font(54)
    assert missing_glyphs(font, "printcloud demo — page 1") == {"—"}
    assert missing_glyphs(font, "printcloud demo - page 1") == set()


def test_every_character_of_the_brochure_has_a_glyph() -> None:
    pages = 4
    for number in range(1, pages + 1):
        title, lines, footer = brochure_text(number, pages)
        assert missing_glyphs(brochure_font(54), title) == set(), title
        for text in (*lines, footer):
            assert missing_glyphs(brochure_font(24), text) == set(), text
    assert make_brochure(pages).startswith(b"%PDF")
