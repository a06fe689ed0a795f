"""The IPP wire format, `application/ipp` (RFC 8010 §3): bytes to `Message` and back.

- §3.1.1 the message: version-number, operation-id/status-code, request-id,
  attribute groups, end-of-attributes-tag, then the document data
  (`Message.data`, from `Message.data_offset`).
- §3.1.2-§3.1.5 attribute-with-one-value and additional-value (1setOf): an
  additional value repeats the value tag with name-length 0 and may have its
  own tag (`Attribute.tags`).
- §3.1.6 collections: begCollection (value-length 0), then per member a
  memberAttrName value naming it followed by its value(s), then endCollection;
  members may be collections themselves (`Limits.max_depth`).
- §3.5.1 delimiter tags: groups 0x01-0x0A, and the reserved 0x0B-0x0F are read as
  groups of an unknown kind (kept, for the server to ignore); 0x00 is malformed.
- §3.5.2 value tags: every tag of the registry (`message.ValueTag`); out-of-band
  values (unsupported, unknown, no-value, not-settable, delete-attribute,
  admin-define) have an empty value; reserved tags and the 0x7F extension tag
  (its value starts with the four-octet extended tag) are kept as raw `bytes`,
  so they are passed on and encode back unchanged; tags 0x80-0xFF are malformed.
- §3.9 value encodings: SIGNED-INTEGER and SIGNED-SHORT in network order,
  boolean 0/1, dateTime the 11 octets of RFC 2579 DateAndTime, resolution
  9 octets, rangeOfInteger 8, textWithLanguage/nameWithLanguage two
  length-prefixed strings; text and name are UTF-8, the other strings US-ASCII.

Decoding is strict and bounded (`Limits`): any malformed, truncated or oversized
input raises `IPPError` with the status to answer (message.py), never anything
else, and the decoder always moves forward, so no input makes it loop.
Encoding is a few `struct` packs per value; a server that answers the same
attributes often encodes each once with `encode_attribute()` and assembles
answers from the bytes with `encode_message()`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from printcloud.ipp.message import (
    Attribute,
    Collection,
    Group,
    GroupTag,
    IPPError,
    Message,
    ValueTag,
)
from printcloud.ipp.model import (
    NameWithLanguage,
    OutOfBand,
    Range,
    Resolution,
    ResolutionUnits,
    Status,
    TextWithLanguage,
)

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "decode",
    "decode_head",
    "encode",
    "encode_attribute",
    "encode_message",
]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of what `decode` reads; past them it answers with an `IPPError`.

    `max_size` counts the octets up to and including end-of-attributes-tag (the
    document data after it is the caller's to bound) and `max_attributes` /
    `max_values` count collection members and their values too: past them,
    client-error-request-entity-too-large. A name longer than `max_name_length`
    or a value longer than `max_value_length` octets is
    client-error-request-value-too-long; collections nested deeper than
    `max_depth` are client-error-bad-request.
    """

    max_size: int = 1 << 20
    max_attributes: int = 4096
    max_values: int = 16384
    max_name_length: int = 255
    max_value_length: int = 32767
    max_depth: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.max_depth <= 64:
            raise ValueError("max_depth must be between 1 and 64")


DEFAULT_LIMITS = Limits()

_HEADER = struct.Struct(">BBHi")
_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")
_RESOLUTION = struct.Struct(">iiB")
_RANGE = struct.Struct(">ii")
_DATE_TIME = struct.Struct(">HBBBBBBcBB")

_OUT_OF_BAND = frozenset(int(t) for t in OutOfBand)
_UTF8_TAGS = frozenset({ValueTag.TEXT, ValueTag.NAME})
_ASCII_TAGS = frozenset(
    {
        ValueTag.KEYWORD,
        ValueTag.URI,
        ValueTag.URI_SCHEME,
        ValueTag.CHARSET,
        ValueTag.NATURAL_LANGUAGE,
        ValueTag.MIME_MEDIA_TYPE,
        ValueTag.MEMBER_ATTR_NAME,
    }
)
_TIMEZONES: dict[int, timezone] = {}


class _Truncated(IPPError):
    """The bytes end inside the attribute section (`decode_head` waits for more)."""


class _Reader:
    """One pass over the bytes; every read moves `pos` forward or raises."""

    __slots__ = ("attributes", "buf", "end", "limits", "pos", "request_id", "values", "version")

    def __init__(self, buf: bytes | bytearray | memoryview, limits: Limits) -> None:
        self.buf = buf
        self.end = len(buf)
        self.limits = limits
        self.pos = 0
        self.attributes = 0
        self.values = 0
        self.request_id = 0
        self.version = (1, 1)

    def fail(self, status: Status, text: str) -> IPPError:
        return IPPError(
            status,
            f"{text} (at octet {self.pos})",
            request_id=self.request_id,
            version=self.version,
        )

    def bad(self, text: str) -> IPPError:
        return self.fail(Status.CLIENT_ERROR_BAD_REQUEST, text)

    def take(self, count: int) -> int:
        """Reserve `count` octets; returns where they start."""
        start = self.pos
        stop = start + count
        if stop > self.limits.max_size:
            raise self.fail(
                Status.CLIENT_ERROR_REQUEST_ENTITY_TOO_LARGE,
                f"the attributes exceed {self.limits.max_size} octets",
            )
        if stop > self.end:
            raise _Truncated(
                Status.CLIENT_ERROR_BAD_REQUEST,
                f"the message ends inside its attributes (at octet {self.end})",
                request_id=self.request_id,
                version=self.version,
            )
        self.pos = stop
        return start

    def byte(self) -> int:
        return self.buf[self.take(1)]

    def short(self, what: str) -> int:
        (value,) = _U16.unpack_from(self.buf, self.take(2))
        if value > 0x7FFF:  # a SIGNED-SHORT length: the high bit set is a negative length
            raise self.bad(f"negative {what}")
        return int(value)

    def element(self, tag: int) -> tuple[bytes, bytes]:
        """name-length, name, value-length, value (RFC 8010 §3.1.4)."""
        name_length = self.short("name-length")
        if name_length > self.limits.max_name_length:
            raise self.fail(
                Status.CLIENT_ERROR_REQUEST_VALUE_TOO_LONG,
                f"an attribute name of {name_length} octets"
                f" (at most {self.limits.max_name_length})",
            )
        start = self.take(name_length)
        name = bytes(self.buf[start : start + name_length])
        value_length = self.short("value-length")
        if value_length > self.limits.max_value_length:
            raise self.fail(
                Status.CLIENT_ERROR_REQUEST_VALUE_TOO_LONG,
                f"a value of {value_length} octets (at most {self.limits.max_value_length})"
                f" for tag {tag:#04x}",
            )
        start = self.take(value_length)
        return name, bytes(self.buf[start : start + value_length])

    def count(self, *, attribute: bool) -> None:
        self.values += 1
        if self.values > self.limits.max_values:
            raise self.fail(
                Status.CLIENT_ERROR_REQUEST_ENTITY_TOO_LARGE,
                f"more than {self.limits.max_values} values",
            )
        if attribute:
            self.attributes += 1
            if self.attributes > self.limits.max_attributes:
                raise self.fail(
                    Status.CLIENT_ERROR_REQUEST_ENTITY_TOO_LARGE,
                    f"more than {self.limits.max_attributes} attributes",
                )

    def attribute_name(self, raw: bytes) -> str:
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.bad("an attribute name that is not US-ASCII") from None

    # -- values (RFC 8010 §3.9) --------------------------------------------------------

    def value(self, tag: int, raw: bytes, depth: int) -> Any:
        if tag in _UTF8_TAGS:
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise self.bad(f"a {ValueTag(tag).name.lower()} value that is not UTF-8") from None
        if tag in _ASCII_TAGS:
            try:
                return raw.decode("ascii")
            except UnicodeDecodeError:
                raise self.bad(
                    f"a {ValueTag(tag).name.lower()} value that is not US-ASCII"
                ) from None
        if tag in (ValueTag.INTEGER, ValueTag.ENUM):
            if len(raw) != 4:
                raise self.bad(f"an integer or enum of {len(raw)} octets")
            return _I32.unpack(raw)[0]
        if tag == ValueTag.BOOLEAN:
            if raw not in (b"\x00", b"\x01"):
                raise self.bad("a boolean that is not one octet 0 or 1")
            return raw == b"\x01"
        if tag in _OUT_OF_BAND:
            if raw:
                raise self.bad(f"an out-of-band value {tag:#04x} with a value")
            return OutOfBand(tag)
        if tag == ValueTag.BEG_COLLECTION:
            if raw:
                raise self.bad("a begCollection with a value")
            return self.collection(depth + 1)
        if tag == ValueTag.OCTET_STRING:
            return raw
        if tag == ValueTag.DATE_TIME:
            return self.date_time(raw)
        if tag == ValueTag.RESOLUTION:
            if len(raw) != 9:
                raise self.bad(f"a resolution of {len(raw)} octets")
            x, y, units = _RESOLUTION.unpack(raw)
            if units not in (3, 4):
                raise self.bad(f"resolution units {units}")
            return Resolution(x, y, ResolutionUnits(units))
        if tag == ValueTag.RANGE_OF_INTEGER:
            if len(raw) != 8:
                raise self.bad(f"a rangeOfInteger of {len(raw)} octets")
            return Range(*_RANGE.unpack(raw))
        if tag in (ValueTag.TEXT_WITH_LANGUAGE, ValueTag.NAME_WITH_LANGUAGE):
            return self.with_language(tag, raw)
        if tag in (ValueTag.END_COLLECTION, ValueTag.MEMBER_ATTR_NAME):
            raise self.bad(f"value tag {tag:#04x} outside a collection")
        if tag == ValueTag.EXTENSION:
            if len(raw) < 4 or raw[0] & 0x80:
                raise self.bad("an extension value without its four-octet tag")
            return raw
        if tag >= 0x80:
            raise self.bad(f"value tag {tag:#04x}")
        return raw  # a reserved tag: passed on as it came

    def date_time(self, raw: bytes) -> datetime:
        if len(raw) != 11:
            raise self.bad(f"a dateTime of {len(raw)} octets")
        year, month, day, hour, minute, second, deci, sign, tz_h, tz_m = _DATE_TIME.unpack(raw)
        if sign not in (b"+", b"-") or deci > 9 or tz_h > 14 or tz_m > 59:
            raise self.bad("a dateTime out of range")
        offset = (tz_h * 60 + tz_m) * (1 if sign == b"+" else -1)
        zone = _TIMEZONES.get(offset)
        if zone is None:
            zone = _TIMEZONES.setdefault(offset, timezone(timedelta(minutes=offset)))
        try:
            return datetime(year, month, day, hour, minute, second, deci * 100_000, tzinfo=zone)
        except ValueError:
            raise self.bad("a dateTime out of range") from None

    def with_language(self, tag: int, raw: bytes) -> TextWithLanguage | NameWithLanguage:
        try:
            (lang_length,) = _U16.unpack_from(raw, 0)
            language = raw[2 : 2 + lang_length].decode("ascii")
            (text_length,) = _U16.unpack_from(raw, 2 + lang_length)
            text = raw[4 + lang_length :].decode("utf-8")
        except (struct.error, UnicodeDecodeError):
            raise self.bad(f"a malformed {ValueTag(tag).name.lower()} value") from None
        if (
            len(language) != lang_length
            or 4 + lang_length + text_length != len(raw)
            or not language
        ):
            raise self.bad(f"a malformed {ValueTag(tag).name.lower()} value")
        if tag == ValueTag.TEXT_WITH_LANGUAGE:
            return TextWithLanguage(text, language)
        return NameWithLanguage(text, language)

    def collection(self, depth: int) -> Collection:
        if depth > self.limits.max_depth:
            raise self.bad(f"collections nested deeper than {self.limits.max_depth}")
        members: dict[str, Attribute] = {}
        current: Attribute | None = None
        pending: str | None = None  # a memberAttrName still waiting for its value
        while True:
            tag = self.byte()
            if tag < 0x10:
                raise self.bad("a collection not closed by endCollection")
            name, raw = self.element(tag)
            if name:
                raise self.bad("a collection member value with a name")
            if tag == ValueTag.END_COLLECTION:
                if raw:
                    raise self.bad("an endCollection with a value")
                if pending is not None:
                    raise self.bad(f"collection member {pending!r} without a value")
                collection = Collection.__new__(Collection)
                collection._members = members
                return collection
            if tag == ValueTag.MEMBER_ATTR_NAME:
                if pending is not None:
                    raise self.bad(f"collection member {pending!r} without a value")
                if not raw:
                    raise self.bad("an empty memberAttrName")
                if len(raw) > self.limits.max_name_length:
                    raise self.fail(
                        Status.CLIENT_ERROR_REQUEST_VALUE_TOO_LONG,
                        f"a member name of {len(raw)} octets",
                    )
                pending = self.attribute_name(raw)
                if pending in members:
                    raise self.bad(f"collection member {pending!r} given twice")
                self.count(attribute=True)
                continue
            if pending is not None:
                current = _attribute(pending, tag, self.value(tag, raw, depth))
                members[pending] = current
                pending = None
            elif current is not None:
                self.count(attribute=False)
                current.values.append(self.value(tag, raw, depth))
                current.tags.append(tag)
            else:
                raise self.bad("a collection value before any memberAttrName")

    # -- the message (RFC 8010 §3.1.1) --------------------------------------------------

    def message(self) -> Message:
        major, minor, code, request_id = _HEADER.unpack_from(self.buf, self.take(8))
        self.request_id = request_id
        self.version = (major, minor)
        if major not in (1, 2):
            self.version = (2, 0) if major > 2 else (1, 1)
            raise self.fail(
                Status.SERVER_ERROR_VERSION_NOT_SUPPORTED, f"IPP version {major}.{minor}"
            )
        groups: list[Group] = []
        group: Group | None = None
        last: Attribute | None = None
        while True:
            tag = self.byte()
            if tag < 0x10:  # a delimiter
                if tag == GroupTag.END:
                    break
                if tag == 0x00:
                    raise self.bad("delimiter tag 0x00")
                group = Group(tag)
                groups.append(group)
                last = None
                continue
            if group is None:
                raise self.bad("an attribute before any attribute group")
            name, raw = self.element(tag)
            if name:
                self.count(attribute=True)
                last = group.add(_attribute(self.attribute_name(name), tag, None))
                last.values.append(self.value(tag, raw, 0))
            elif last is None:
                raise self.bad("an additional value with no attribute before it")
            else:
                self.count(attribute=False)
                last.values.append(self.value(tag, raw, 0))
                last.tags.append(tag)
        return Message(
            code,
            request_id,
            groups,
            version=(major, minor),
            data=memoryview(self.buf)[self.pos :],
            data_offset=self.pos,
        )


def _attribute(name: str, tag: int, value: Any) -> Attribute:
    # The decoder's values are right by construction: skip Attribute.__init__'s checks.
    attribute = Attribute.__new__(Attribute)
    attribute.name = name
    attribute.tags = [tag]
    attribute.values = [] if value is None else [value]
    return attribute


def decode(data: bytes | bytearray | memoryview, *, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Read a whole message; what follows end-of-attributes-tag becomes `Message.data`.

    Raises `IPPError` (and nothing else) for anything malformed or past `limits`.
    """
    try:
        return _Reader(data, limits).message()
    except IPPError:
        raise
    except Exception as exc:  # a bug here must still answer the client, not a 500
        raise IPPError(
            Status.CLIENT_ERROR_BAD_REQUEST, f"unreadable IPP message ({type(exc).__name__})"
        ) from exc


def decode_head(
    prefix: bytes | bytearray | memoryview, *, limits: Limits = DEFAULT_LIMITS
) -> Message | None:
    """Like `decode` on the first bytes of a body; None while the attributes are incomplete.

    A server streaming a large Print-Job reads until this returns a message, answers
    errors at once, and streams the rest of the body (after `data_offset`) to storage.
    """
    try:
        return decode(prefix, limits=limits)
    except _Truncated:
        return None


# -- encoding ---------------------------------------------------------------------------


def _utc_offset_minutes(value: datetime) -> int:
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("a dateTime value must be timezone-aware")
    return int(offset.total_seconds()) // 60


def _value_bytes(tag: int, value: Any) -> bytes:
    if tag in _UTF8_TAGS:
        return bytes(value.encode("utf-8"))
    if tag in _ASCII_TAGS:
        return bytes(value.encode("ascii"))
    if tag in (ValueTag.INTEGER, ValueTag.ENUM):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"an integer is needed, not {type(value).__name__}")
        return _I32.pack(value)
    if tag == ValueTag.BOOLEAN:
        if not isinstance(value, bool):
            raise TypeError(f"a bool is needed, not {type(value).__name__}")
        return b"\x01" if value else b"\x00"
    if tag in _OUT_OF_BAND:
        return b""
    if tag == ValueTag.RESOLUTION:
        return _RESOLUTION.pack(value.x, value.y, int(value.units))
    if tag == ValueTag.RANGE_OF_INTEGER:
        return _RANGE.pack(value.lower, value.upper)
    if tag == ValueTag.DATE_TIME:
        minutes = _utc_offset_minutes(value)
        sign = b"-" if minutes < 0 else b"+"
        hours, mins = divmod(abs(minutes), 60)
        return _DATE_TIME.pack(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond // 100_000,
            sign,
            hours,
            mins,
        )
    if tag in (ValueTag.TEXT_WITH_LANGUAGE, ValueTag.NAME_WITH_LANGUAGE):
        text = value.text if tag == ValueTag.TEXT_WITH_LANGUAGE else value.name
        language = value.language.encode("ascii")
        if not language:
            raise ValueError("a natural language is needed")
        encoded = text.encode("utf-8")
        return _U16.pack(len(language)) + language + _U16.pack(len(encoded)) + encoded
    if tag in (ValueTag.END_COLLECTION, ValueTag.MEMBER_ATTR_NAME) or tag > 255:
        raise ValueError(f"value tag {tag:#04x} cannot be given as a value")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"bytes are needed for tag {tag:#04x}, not {type(value).__name__}")


def _element(tag: int, name: bytes, value: bytes) -> bytes:
    if len(value) > 0x7FFF:
        raise ValueError(f"a value of {len(value)} octets (RFC 8010 allows 32767)")
    return b"".join((bytes((tag,)), _U16.pack(len(name)), name, _U16.pack(len(value)), value))


def _collection_bytes(collection: Collection, out: list[bytes]) -> None:
    for member in collection.values():
        name = member.name.encode("ascii")
        out.append(_element(ValueTag.MEMBER_ATTR_NAME, b"", name))
        for tag, value in zip(member.tags, member.values, strict=True):
            _value_into(tag, b"", value, out)
    out.append(b"\x37\x00\x00\x00\x00")  # endCollection, no name, no value


def _value_into(tag: int, name: bytes, value: Any, out: list[bytes]) -> None:
    if tag == ValueTag.BEG_COLLECTION:
        if not isinstance(value, Collection):
            raise TypeError(f"a Collection is needed, not {type(value).__name__}")
        out.append(_element(tag, name, b""))
        _collection_bytes(value, out)
    else:
        out.append(_element(tag, name, _value_bytes(tag, value)))


def encode_attribute(attribute: Attribute) -> bytes:
    """The bytes of one attribute, all its values (RFC 8010 §3.1.4-§3.1.6)."""
    out: list[bytes] = []
    try:
        name = attribute.name.encode("ascii")
        if not name or len(name) > 0x7FFF:
            raise ValueError("an attribute name must be 1 to 32767 US-ASCII octets")
        first = True
        for tag, value in zip(attribute.tags, attribute.values, strict=True):
            _value_into(tag, name if first else b"", value, out)
            first = False
    except (TypeError, ValueError, AttributeError, struct.error) as exc:
        raise ValueError(f"attribute {attribute.name!r}: {exc}") from exc
    return b"".join(out)


def encode_message(
    code: int,
    request_id: int,
    groups: Iterable[tuple[int, Iterable[Attribute | bytes]]],
    *,
    version: tuple[int, int] = (2, 0),
    data: bytes | memoryview = b"",
) -> bytes:
    """A message from its groups; an item may be an `Attribute` or `encode_attribute` bytes."""
    out = [_HEADER.pack(version[0], version[1], code, request_id)]
    for tag, attributes in groups:
        if not 0x01 <= tag <= 0x0F or tag == GroupTag.END:
            raise ValueError(f"{tag:#04x} is not a group tag")
        out.append(bytes((tag,)))
        for attribute in attributes:
            out.append(attribute if isinstance(attribute, bytes) else encode_attribute(attribute))
    out.append(b"\x03")
    out.append(bytes(data))
    return b"".join(out)


def encode(message: Message) -> bytes:
    """The bytes of `message`, its document data included."""
    return encode_message(
        message.code,
        message.request_id,
        ((group.tag, group) for group in message.groups),
        version=message.version,
        data=message.data,
    )
