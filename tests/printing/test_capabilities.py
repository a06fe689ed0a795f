"""What a registered IPP INFRA output device's attributes come to (`capabilities.derive`):
the device's limits within printcloud's, nonsense ignored, nothing printable refused."""

from __future__ import annotations

import pytest

from printcloud.ipp.message import Attribute, ValueTag
from printcloud.ipp.model import Range, Resolution, ResolutionUnits
from printcloud.printing.capabilities import Refused, derive, media_name

K, M, R = ValueTag.KEYWORD, ValueTag.MIME_MEDIA_TYPE, ValueTag.RESOLUTION


def test_nothing_reported_is_all_printcloud_can_do() -> None:
    caps = derive([], configured_color=False)
    assert not caps.color  # as configured
    assert caps.media == ("A4", "A3", "A5", "Letter", "Legal")
    assert caps.duplex and caps.resolutions == (150, 200, 300, 600)
    assert caps.formats == ("application/pdf", "image/pwg-raster", "image/urf", "image/jpeg")
    assert caps.copies_max == 999 and caps.media_default == "A4"


def test_a_mono_a4_simplex_raster_printer() -> None:
    caps = derive(
        [
            Attribute("document-format-supported", M, ["image/pwg-raster", "image/urf"]),
            Attribute("color-supported", ValueTag.BOOLEAN, True),
            Attribute("print-color-mode-supported", K, ["monochrome", "auto-monochrome"]),
            Attribute("media-supported", K, ["iso_a4_210x297mm", "custom_min_1x1in"]),
            Attribute("media-default", K, "na_letter_8.5x11in"),  # not a supported one
            Attribute("sides-supported", K, ["one-sided", "two-sided-short-edge"]),
            Attribute("pwg-raster-document-resolution-supported", R, [Resolution(300, 300)]),
            Attribute("pwg-raster-document-type-supported", K, ["black_1", "sgray_8"]),
            Attribute("urf-supported", K, ["V1.4", "W8", "RS300-600"]),
            Attribute("copies-supported", ValueTag.RANGE_OF_INTEGER, Range(1, 99)),
            Attribute("printer-make-and-model", ValueTag.TEXT, "Mono\x07 A4 1000"),
        ],
        configured_color=True,
    )
    assert not caps.color  # print-color-mode-supported has no color
    assert caps.media == ("A4",) and caps.media_default == "A4" and caps.media_ready == ("A4",)
    assert not caps.duplex and caps.sides == ("one-sided",)
    assert caps.formats == ("image/pwg-raster", "image/urf")
    assert caps.pwg_resolutions == (300,) and caps.pwg_types == ("sgray_8", "black_1")
    assert caps.urf_resolutions == (300, 600) and caps.urf_types == ("W8",)
    assert caps.resolutions == (300, 600)
    assert caps.nearest_dpi(150) == 300 and caps.nearest_dpi(200) == 300
    assert caps.copies_max == 99
    assert caps.make_and_model == "Mono A4 1000"


def test_values_that_make_no_sense_are_ignored() -> None:
    caps = derive(
        [
            Attribute("color-supported", K, "yes"),  # not a boolean: ignored
            Attribute("copies-supported", ValueTag.INTEGER, 5),  # not a range: ignored
            Attribute(
                "printer-resolution-supported",
                R,
                [
                    Resolution(118, 118, ResolutionUnits.DOTS_PER_CM),  # 300 dpi
                    Resolution(600, 300),  # not square
                ],
            ),
            Attribute("media-supported", K, ["om_a4ish_210.4x297.3mm", "roll_max_36x66.1in"]),
        ],
        configured_color=True,
    )
    assert caps.color and caps.copies_max == 999
    assert caps.resolutions == (300,)
    assert caps.media == ("A4",)
    # a PDF printer at 360/720 dpi converts at printcloud's nearest
    caps = derive(
        [Attribute("printer-resolution-supported", R, [Resolution(d, d) for d in (360, 720)])],
        configured_color=True,
    )
    assert caps.resolutions == (300, 600)
    # PWG raster at resolutions printcloud does not render at: not offered
    caps = derive(
        [
            Attribute("document-format-supported", M, ["application/pdf", "image/pwg-raster"]),
            Attribute("pwg-raster-document-resolution-supported", R, [Resolution(360, 360)]),
        ],
        configured_color=True,
    )
    assert caps.formats == ("application/pdf",)


@pytest.mark.parametrize(
    ("attribute", "named"),
    [
        (Attribute("document-format-supported", M, "application/postscript"), "document-format"),
        (Attribute("media-supported", K, "na_foolscap_8.5x13in"), "media-supported"),
    ],
)
def test_nothing_printable_is_refused(attribute: Attribute, named: str) -> None:
    with pytest.raises(Refused) as refused:
        derive([attribute], configured_color=True)
    assert refused.value.attribute.name.startswith(named)


def test_media_names() -> None:
    assert media_name("iso_a4_210x297mm") == "A4"
    assert media_name("na_letter_8.5x11in") == "Letter"
    assert media_name("jis_b5_182x257mm") is None
    assert media_name("nonsense") is None
