"""RFC 8010 encoding: round trips (hypothesis), exact bytes of each syntax, and the
status every malformed or oversized message is answered with."""

from __future__ import annotations

import struct
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings

from printcloud.ipp import (
    Attribute,
    Collection,
    Group,
    GroupTag,
    IPPError,
    Limits,
    Message,
    NameWithLanguage,
    Operation,
    OutOfBand,
    Range,
    Resolution,
    ResolutionUnits,
    Status,
    TextWithLanguage,
    ValueTag,
    decode,
    decode_head,
    encode,
    encode_attribute,
    encode_message,
)
from tests.ipp.codec_strategies import MESSAGES

ROUND_TRIP = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HEADER = bytes.fromhex("0200000b00000001")  # IPP/2.0 Get-Printer-Attributes, request-id 1


def element(tag: int, name: bytes, value: bytes) -> bytes:
    return (
        bytes([tag]) + struct.pack(">H", len(name)) + name + struct.pack(">H", len(value)) + value
    )


def message(*elements: bytes, end: bytes = b"\x03") -> bytes:
    return HEADER + b"\x01" + b"".join(elements) + end


# -- round trips ----------------------------------------------------------------------


@ROUND_TRIP
@given(MESSAGES)
def test_encode_decode_gives_the_same_message(original: Message) -> None:
    wire = encode(original)
    decoded = decode(wire)
    assert decoded == original
    assert encode(decoded) == wire
    assert decoded.data_offset == len(wire) - len(original.data)


@settings(ROUND_TRIP, max_examples=150)
@given(MESSAGES)
def test_decode_head_waits_for_the_whole_attribute_section(original: Message) -> None:
    wire = encode(original)
    attributes_end = len(wire) - len(original.data)
    assert decode_head(wire[: attributes_end - 1]) is None
    head = decode_head(wire[:attributes_end])
    assert head is not None
    assert head.groups == original.groups
    assert bytes(head.data) == b""


def test_encode_message_splices_cached_attribute_bytes() -> None:
    cached = encode_attribute(Attribute("printer-name", ValueTag.NAME, "office"))
    built = encode_message(
        0,
        5,
        [
            (GroupTag.OPERATION, [Attribute("attributes-charset", ValueTag.CHARSET, "utf-8")]),
            (GroupTag.PRINTER, [cached, Attribute("copies-default", ValueTag.INTEGER, 1)]),
        ],
    )
    decoded = decode(built)
    assert decoded.value(GroupTag.PRINTER, "printer-name") == "office"
    assert decoded.value(GroupTag.PRINTER, "copies-default") == 1
    assert decoded.request_id == 5


# -- the bytes of each syntax (RFC 8010 §3.1, §3.9) --------------------------------------


def test_each_syntax_has_its_rfc_8010_bytes() -> None:
    when = datetime(
        2026, 12, 7, 3, 4, 5, 600_000, tzinfo=timezone(timedelta(hours=-5, minutes=-30))
    )
    cases: list[tuple[Attribute, bytes]] = [
        (Attribute("copies", ValueTag.INTEGER, 2), element(0x21, b"copies", b"\0\0\0\2")),
        (Attribute("job-state", ValueTag.ENUM, 9), element(0x23, b"job-state", b"\0\0\0\x09")),
        (Attribute("b", ValueTag.BOOLEAN, True), element(0x22, b"b", b"\x01")),
        (Attribute("o", ValueTag.OCTET_STRING, b"\xff\x00"), element(0x30, b"o", b"\xff\x00")),
        (
            Attribute("d", ValueTag.DATE_TIME, when),
            element(0x31, b"d", bytes([0x07, 0xEA, 12, 7, 3, 4, 5, 6]) + b"-" + bytes([5, 30])),
        ),
        (
            Attribute("r", ValueTag.RESOLUTION, Resolution(300, 600, ResolutionUnits.DOTS_PER_CM)),
            element(0x32, b"r", struct.pack(">iib", 300, 600, 4)),
        ),
        (
            Attribute("p", ValueTag.RANGE_OF_INTEGER, Range(-1, 7)),
            element(0x33, b"p", struct.pack(">ii", -1, 7)),
        ),
        (
            Attribute("t", ValueTag.TEXT_WITH_LANGUAGE, TextWithLanguage("été", "fr")),
            element(0x35, b"t", b"\x00\x02fr\x00\x05" + "été".encode()),
        ),
        (
            Attribute("n", ValueTag.NAME_WITH_LANGUAGE, NameWithLanguage("x", "en-us")),
            element(0x36, b"n", b"\x00\x05en-us\x00\x01x"),
        ),
        (Attribute("k", ValueTag.KEYWORD, "one-sided"), element(0x44, b"k", b"one-sided")),
        (Attribute("u", ValueTag.NO_VALUE), element(0x13, b"u", b"")),
        (
            Attribute("m", ValueTag.KEYWORD, ["a4", "my paper"], tags=[0x44, 0x42]),
            element(0x44, b"m", b"a4") + element(0x42, b"", b"my paper"),
        ),
        (Attribute("x", 0x7F, b"\x00\x00\x01\x00!"), element(0x7F, b"x", b"\x00\x00\x01\x00!")),
        (
            Attribute(
                "media-col",
                ValueTag.BEG_COLLECTION,
                Collection(
                    [
                        Attribute(
                            "media-size",
                            ValueTag.BEG_COLLECTION,
                            Collection([Attribute("x-dimension", ValueTag.INTEGER, 21000)]),
                        ),
                        Attribute("media-type", ValueTag.KEYWORD, ["a", "b"]),
                    ]
                ),
            ),
            element(0x34, b"media-col", b"")
            + element(0x4A, b"", b"media-size")
            + element(0x34, b"", b"")
            + element(0x4A, b"", b"x-dimension")
            + element(0x21, b"", struct.pack(">i", 21000))
            + element(0x37, b"", b"")
            + element(0x4A, b"", b"media-type")
            + element(0x44, b"", b"a")
            + element(0x44, b"", b"b")
            + element(0x37, b"", b""),
        ),
    ]
    for attribute, wire in cases:
        assert encode_attribute(attribute) == wire, attribute
        decoded = decode(message(wire))
        assert decoded.groups[0].attributes == (attribute,)


def test_message_header_group_order_and_document_data() -> None:
    wire = (
        bytes.fromhex("0101000200000007")
        + b"\x01"
        + element(0x47, b"attributes-charset", b"utf-8")
        + b"\x02"
        + element(0x21, b"copies", b"\0\0\0\1")
        + b"\x02"  # a second job group
        + b"\x03"
        + b"%PDF-1.7\n"
    )
    decoded = decode(wire)
    assert decoded.version == (1, 1)
    assert decoded.operation is Operation.PRINT_JOB
    assert decoded.request_id == 7
    assert [g.tag for g in decoded.groups] == [GroupTag.OPERATION, GroupTag.JOB, GroupTag.JOB]
    assert decoded.get(GroupTag.JOB, "copies") == Attribute("copies", ValueTag.INTEGER, 1)
    assert len(decoded.groups_of(GroupTag.JOB)) == 2
    assert bytes(decoded.data) == b"%PDF-1.7\n"
    assert wire[decoded.data_offset :] == b"%PDF-1.7\n"
    assert encode(decoded) == wire


def test_out_of_band_values_are_their_tags() -> None:
    decoded = decode(message(element(0x10, b"a", b""), element(0x12, b"b", b"")))
    group = decoded.groups[0]
    assert group["a"].value is OutOfBand.UNSUPPORTED and group["a"].out_of_band
    assert group["b"].value is OutOfBand.UNKNOWN


def test_encoding_refuses_values_that_do_not_fit_their_tag() -> None:
    for attribute in [
        Attribute("copies", ValueTag.INTEGER, "2"),
        Attribute("copies", ValueTag.INTEGER, True),
        Attribute("copies", ValueTag.INTEGER, 2**31),
        Attribute("flag", ValueTag.BOOLEAN, 1),
        Attribute("k", ValueTag.KEYWORD, "é"),
        Attribute("d", ValueTag.DATE_TIME, datetime(2026, 1, 1)),  # naive
        Attribute("c", ValueTag.BEG_COLLECTION, {"a": 1}),
        Attribute("t", ValueTag.TEXT, "x" * 40_000),
        Attribute("é", ValueTag.INTEGER, 1),
    ]:
        with pytest.raises(ValueError, match="attribute"):
            encode_attribute(attribute)
    with pytest.raises(ValueError, match="no value"):
        Attribute("copies", ValueTag.INTEGER, [])


# -- malformed input: the status each gets ---------------------------------------------

BAD = Status.CLIENT_ERROR_BAD_REQUEST
MALFORMED: list[tuple[str, bytes, Status]] = [
    ("empty body", b"", BAD),
    ("header cut short", HEADER[:5], BAD),
    ("no end-of-attributes-tag", HEADER + b"\x01" + element(0x21, b"a", b"\0\0\0\1"), BAD),
    ("attribute before any group", HEADER + element(0x21, b"a", b"\0\0\0\1") + b"\x03", BAD),
    ("delimiter 0x00", HEADER + b"\x00\x03", BAD),
    ("additional value first", message(element(0x21, b"", b"\0\0\0\1")), BAD),
    ("integer of 3 octets", message(element(0x21, b"a", b"\0\0\1")), BAD),
    ("enum of 5 octets", message(element(0x23, b"a", b"\0\0\0\0\1")), BAD),
    ("boolean 2", message(element(0x22, b"a", b"\x02")), BAD),
    ("resolution of 8 octets", message(element(0x32, b"a", b"\0" * 8)), BAD),
    ("resolution units 9", message(element(0x32, b"a", b"\0" * 8 + b"\x09")), BAD),
    ("range of 7 octets", message(element(0x33, b"a", b"\0" * 7)), BAD),
    ("dateTime of 10 octets", message(element(0x31, b"a", b"\0" * 10)), BAD),
    ("dateTime month 13", message(element(0x31, b"a", b"\x07\xea\x0d\x01\0\0\0\0+\0\0")), BAD),
    ("dateTime bad direction", message(element(0x31, b"a", b"\x07\xea\x01\x01\0\0\0\0*\0\0")), BAD),
    ("text not UTF-8", message(element(0x41, b"a", b"\xff\xfe")), BAD),
    ("keyword not ASCII", message(element(0x44, b"a", "é".encode())), BAD),
    ("name not ASCII", message(element(0x44, "é".encode(), b"x")), BAD),
    ("textWithLanguage lengths", message(element(0x35, b"a", b"\x00\x09en\x00\x01x")), BAD),
    ("textWithLanguage trailing", message(element(0x35, b"a", b"\x00\x02en\x00\x01xy")), BAD),
    ("out-of-band with a value", message(element(0x13, b"a", b"x")), BAD),
    ("endCollection outside", message(element(0x37, b"a", b"")), BAD),
    ("memberAttrName outside", message(element(0x4A, b"a", b"b")), BAD),
    ("value tag 0x80", message(element(0x80, b"a", b"")), BAD),
    ("extension without its tag", message(element(0x7F, b"a", b"\0\0")), BAD),
    ("extension tag high bit", message(element(0x7F, b"a", b"\x80\0\0\0")), BAD),
    ("negative value-length", HEADER + b"\x01\x21\x00\x01a\xff\xff\x03", BAD),
    (
        "begCollection with a value",
        message(element(0x34, b"c", b"x") + element(0x37, b"", b"")),
        BAD,
    ),
    ("collection never closed", message(element(0x34, b"c", b"")), BAD),
    ("collection closed by a group", message(element(0x34, b"c", b""), end=b"\x02\x03"), BAD),
    (
        "collection value without member name",
        message(
            element(0x34, b"c", b"") + element(0x21, b"", b"\0\0\0\1") + element(0x37, b"", b"")
        ),
        BAD,
    ),
    (
        "collection member without value",
        message(element(0x34, b"c", b"") + element(0x4A, b"", b"m") + element(0x37, b"", b"")),
        BAD,
    ),
    (
        "collection member named twice",
        message(
            element(0x34, b"c", b"")
            + element(0x4A, b"", b"m")
            + element(0x21, b"", b"\0\0\0\1")
            + element(0x4A, b"", b"m")
            + element(0x21, b"", b"\0\0\0\1")
            + element(0x37, b"", b"")
        ),
        BAD,
    ),
    (
        "collection member value with a name",
        message(
            element(0x34, b"c", b"") + element(0x4A, b"", b"m") + element(0x21, b"n", b"\0\0\0\1")
        ),
        BAD,
    ),
    (
        "version 0.0",
        bytes.fromhex("0000000b00000001") + b"\x03",
        Status.SERVER_ERROR_VERSION_NOT_SUPPORTED,
    ),
    (
        "version 3.0",
        bytes.fromhex("0300000b00000001") + b"\x03",
        Status.SERVER_ERROR_VERSION_NOT_SUPPORTED,
    ),
]


@pytest.mark.parametrize(
    ("wire", "status"), [(w, s) for _, w, s in MALFORMED], ids=[n for n, _, _ in MALFORMED]
)
def test_malformed_messages_get_their_status(wire: bytes, status: Status) -> None:
    with pytest.raises(IPPError) as caught:
        decode(wire)
    assert caught.value.status == status
    if len(wire) >= 8:
        assert caught.value.request_id == 1  # read before the failure, for the answer


def test_limits_answer_too_large_and_too_long() -> None:
    many = message(*[element(0x21, f"a{i}".encode(), b"\0\0\0\1") for i in range(20)])
    values = message(element(0x21, b"a", b"\0\0\0\1"), *[element(0x21, b"", b"\0\0\0\1")] * 20)
    long_value = message(element(0x41, b"t", b"x" * 300))
    long_name = message(element(0x41, b"n" * 300, b"x"))
    cases = [
        (many, Limits(max_attributes=10), Status.CLIENT_ERROR_REQUEST_ENTITY_TOO_LARGE),
        (values, Limits(max_values=10), Status.CLIENT_ERROR_REQUEST_ENTITY_TOO_LARGE),
        (many, Limits(max_size=100), Status.CLIENT_ERROR_REQUEST_ENTITY_TOO_LARGE),
        (long_value, Limits(max_value_length=255), Status.CLIENT_ERROR_REQUEST_VALUE_TOO_LONG),
        (long_name, Limits(), Status.CLIENT_ERROR_REQUEST_VALUE_TOO_LONG),
    ]
    for wire, limits, status in cases:
        with pytest.raises(IPPError) as caught:
            decode(wire, limits=limits)
        assert caught.value.status == status, (limits, caught.value)
    # a truncated message past the size limit is too large, not merely incomplete
    with pytest.raises(IPPError) as caught:
        decode_head(many[:150], limits=Limits(max_size=100))
    assert caught.value.status == Status.CLIENT_ERROR_REQUEST_ENTITY_TOO_LARGE
    # the document data after the attributes is not counted
    assert decode(message() + b"x" * 1000, limits=Limits(max_size=100)).data_offset == 10


def nested(depth: int) -> bytes:
    opening = element(0x34, b"c", b"") + (element(0x4A, b"", b"m") + element(0x34, b"", b"")) * (
        depth - 1
    )
    return message(opening + element(0x37, b"", b"") * depth)


def test_collection_depth_is_bounded() -> None:
    assert decode(nested(8)).groups[0]["c"].tag == ValueTag.BEG_COLLECTION
    for depth in (9, 5000):
        with pytest.raises(IPPError) as caught:
            decode(nested(depth))
        assert caught.value.status == BAD
        assert "nested deeper than 8" in caught.value.description
    with pytest.raises(IPPError):
        decode(nested(3), limits=Limits(max_depth=2))


def test_group_lookup_and_repeated_names() -> None:
    group = Group(
        GroupTag.JOB,
        [Attribute("copies", ValueTag.INTEGER, 1), Attribute("copies", ValueTag.INTEGER, 2)],
    )
    assert group["copies"].value == 1
    assert group.repeated == ["copies"]
    assert "copies" in group and "sides" not in group and group.get("sides") is None


def test_a_large_body_in_a_bytearray_is_read_without_copying_the_document() -> None:
    document = bytes(range(256)) * 8192  # 2 MiB, past max_size: only the attributes count
    body = bytearray(message(element(0x21, b"copies", b"\0\0\0\2")) + document)
    decoded = decode(memoryview(body), limits=Limits(max_size=1 << 20))
    assert decoded.value(GroupTag.OPERATION, "copies") == 2
    assert decoded.data_offset == len(body) - len(document)
    assert isinstance(decoded.data, memoryview) and decoded.data.obj is body
    assert decoded.data == document
    # the same prefix cut inside the attributes is incomplete, not malformed
    assert decode_head(bytearray(body[:20])) is None


def test_limits_must_make_sense() -> None:
    for bad in (
        {"max_depth": 0},
        {"max_depth": 65},
        {"max_size": 0},
        {"max_values": -1},
        {"max_value_length": 40_000},
    ):
        with pytest.raises(ValueError, match=r"max_|limit"):
            Limits(**bad)  # type: ignore[arg-type]
