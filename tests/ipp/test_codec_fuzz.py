"""Hostile bytes: mutated, truncated, oversized, deeply nested and wrongly tagged
messages get an `IPPError` with one of the decoder's statuses, never another
exception, and never a hang."""

from __future__ import annotations

import struct
import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from printcloud import ipp
from printcloud.ipp import IPPError, Limits, Message, Status, decode, decode_head, encode
from tests.ipp.codec_strategies import MESSAGES

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DECODER_STATUSES = {
    Status.CLIENT_ERROR_BAD_REQUEST,
    Status.CLIENT_ERROR_REQUEST_ENTITY_TOO_LARGE,
    Status.CLIENT_ERROR_REQUEST_VALUE_TOO_LONG,
    Status.SERVER_ERROR_VERSION_NOT_SUPPORTED,
}
SMALL = Limits(max_size=4096, max_attributes=50, max_values=100, max_value_length=512, max_depth=4)


def read(wire: bytes, limits: Limits = SMALL) -> Message | IPPError:
    """decode(), with IPPError as a result; any other exception fails the test."""
    try:
        return decode(wire, limits=limits)
    except IPPError as error:
        assert error.status in DECODER_STATUSES, error
        return error


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    wire = bytearray(encode(draw(MESSAGES)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "length", "tag"]))
        at = draw(st.integers(0, max(len(wire) - 1, 0)))
        if kind == "flip" and wire:
            wire[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            wire[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del wire[at : at + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del wire[at:]
        elif kind == "length" and at + 2 <= len(wire):
            wire[at : at + 2] = struct.pack(
                ">H", draw(st.sampled_from([0, 1, 0x7FFF, 0x8000, 0xFFFF]))
            )
        elif kind == "tag" and wire:
            wire[at] = draw(st.sampled_from([0x00, 0x03, 0x0F, 0x34, 0x37, 0x4A, 0x7F, 0x80, 0xFF]))
    return bytes(wire)


@FUZZ
@given(mutated())
def test_mutated_messages_decode_or_get_a_decoder_status(wire: bytes) -> None:
    result = read(wire)
    if isinstance(result, Message):
        # what decodes encodes back to a message that decodes the same way
        assert decode(encode(result)) == result
        try:
            ipp.check_request(result)
        except IPPError as error:
            result = error
    if isinstance(result, IPPError):
        # and a server can always answer it (RFC 8011 §4.1.6), whatever the input was
        answer = decode(encode(ipp.error_response(result)))
        assert answer.status == result.status


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_after_a_valid_header(tail: bytes) -> None:
    read(bytes.fromhex("0200000200000001") + tail)
    read(tail)


@settings(FUZZ, max_examples=150)
@given(MESSAGES, st.data())
def test_every_truncation_is_incomplete_or_an_error(original: Message, data: st.DataObject) -> None:
    wire = encode(original)
    end = len(wire) - len(original.data)
    cut = data.draw(st.integers(0, end - 1))
    assert decode_head(wire[:cut]) is None
    error = read(wire[:cut], Limits())
    assert isinstance(error, IPPError) and error.status == Status.CLIENT_ERROR_BAD_REQUEST


def test_the_worst_case_message_decodes_within_a_deadline() -> None:
    # The largest message the default limits let through, made of the smallest
    # values (1setOf of empty octetStrings): a bounded amount of work, not a hang.
    value = b"\x30\x00\x00\x00\x00"
    wire = bytes.fromhex("0200000200000001") + b"\x01\x30\x00\x01a\x00\x00" + value * 16_383
    outcome: list[object] = []

    def work() -> None:
        outcome.append(read(wire + b"\x03", Limits()))
        outcome.append(read(wire + value * 10 + b"\x03", Limits()))

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "decoding did not finish within 120 s"
    first, second = outcome
    assert isinstance(first, Message) and len(first.groups[0]["a"].values) == 16_384
    assert isinstance(second, IPPError)
    assert second.status == Status.CLIENT_ERROR_REQUEST_ENTITY_TOO_LARGE
