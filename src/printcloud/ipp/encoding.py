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
from collections.abc import Callable, Iterable
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
        if not 1 <= self.max_depth <= 64:  # the decoder recurses once per level
            raise ValueError("max_depth must be between 1 and 64")
        if min(self.max_size, self.max_attributes, self.max_values, self.max_name_length) < 1:
            raise ValueError("every limit must be positive")
        if not 0 <= self.max_value_length <= 0x7FFF:
            raise ValueError("max_value_length must be between 0 and 32767")


DEFAULT_LIMITS = Limits()

_HEADER = struct.Struct(">BBHi")
_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")
_RESOLUTION = struct.Struct(">iiB")
_RANGE = struct.Struct(">ii")
_DATE_TIME = struct.Struct(">HBBBBBBcBB")
_TAG_AND_LENGTH = struct.Struct(">BH")

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
    }
)
_TIMEZONES: dict[int, timezone] = {}
_BEG_COLLECTION = int(ValueTag.BEG_COLLECTION)
_END_COLLECTION = int(ValueTag.END_COLLECTION)
_MEMBER_ATTR_NAME = int(ValueTag.MEMBER_ATTR_NAME)


class _Truncated(IPPError):
    """The bytes end inside the attribute section (`decode_head` waits for more)."""


class _Reader:
    """One pass over the bytes; every read moves `pos` forward or raises.

    `limit` is where reading must stop: the end of the bytes or `max_size`,
    whichever comes first; `overrun` says which of the two was hit.
    """

    __slots__ = (
        "attributes",
        "buf",
        "limit",
        "limits",
        "pos",
        "request_id",
        "source",
        "total",
        "values",
        "version",
    )

    def __init__(self, data: bytes | bytearray | memoryview, limits: Limits) -> None:
        # The attribute section is at most max_size octets: only that much is copied
        # out of a buffer that is not `bytes` (a large document stays where it is).
        self.source = data
        self.buf = data if isinstance(data, bytes) else bytes(memoryview(data)[: limits.max_size])
        self.total = len(data)
        self.limit = min(len(self.buf), limits.max_size)
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

    def overrun(self, stop: int) -> IPPError:
        if stop > self.limits.max_size:
            return self.fail(
                Status.CLIENT_ERROR_REQUEST_ENTITY_TOO_LARGE,
                f"the attributes exceed {self.limits.max_size} octets",
            )
        return _Truncated(
            Status.CLIENT_ERROR_BAD_REQUEST,
            f"the message ends inside its attributes (at octet {self.total})",
            request_id=self.request_id,
            version=self.version,
        )

    def next(self) -> tuple[int, bytes, bytes]:
        """The next tag and, unless it is a delimiter, the name and value that follow it
        (RFC 8010 §3.1.4: value-tag, name-length, name, value-length, value)."""
        buf, pos, limit = self.buf, self.pos, self.limit
        if pos >= limit:
            raise self.overrun(pos + 1)
        tag = buf[pos]
        if tag < 0x10:
            self.pos = pos + 1
            return tag, b"", b""
        if pos + 3 > limit:
            raise self.overrun(pos + 3)
        name_length = (buf[pos + 1] << 8) | buf[pos + 2]
        limits = self.limits
        if name_length > limits.max_name_length:
            self.pos = pos + 1
            if name_length > 0x7FFF:  # SIGNED-SHORT: the high bit makes it negative
                raise self.bad("a negative name-length")
            raise self.fail(
                Status.CLIENT_ERROR_REQUEST_VALUE_TOO_LONG,
                f"an attribute name of {name_length} octets (at most {limits.max_name_length})",
            )
        name_end = pos + 3 + name_length
        if name_end + 2 > limit:
            raise self.overrun(name_end + 2)
        value_length = (buf[name_end] << 8) | buf[name_end + 1]
        if value_length > limits.max_value_length:
            self.pos = name_end
            if value_length > 0x7FFF:
                raise self.bad("a negative value-length")
            raise self.fail(
                Status.CLIENT_ERROR_REQUEST_VALUE_TOO_LONG,
                f"a value of {value_length} octets (at most {limits.max_value_length})"
                f" for tag {tag:#04x}",
            )
        stop = name_end + 2 + value_length
        if stop > limit:
            raise self.overrun(stop)
        self.pos = stop
        return tag, buf[pos + 3 : name_end], buf[name_end + 2 : stop]

    def new_attribute(self) -> None:
        self.attributes += 1
        self.values += 1
        if self.attributes > self.limits.max_attributes:
            raise self.fail(
                Status.CLIENT_ERROR_REQUEST_ENTITY_TOO_LARGE,
                f"more than {self.limits.max_attributes} attributes",
            )
        if self.values > self.limits.max_values:
            raise self.too_many_values()

    def too_many_values(self) -> IPPError:
        return self.fail(
            Status.CLIENT_ERROR_REQUEST_ENTITY_TOO_LARGE,
            f"more than {self.limits.max_values} values",
        )

    def attribute_name(self, raw: bytes) -> str:
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.bad("an attribute name that is not US-ASCII") from None

    # -- values (RFC 8010 §3.9) --------------------------------------------------------

    def value(self, tag: int, raw: bytes, depth: int) -> Any:
        if (tag == 0x21 or tag == 0x23) and len(raw) == 4:  # noqa: PLR1714  # integer, enum
            return int.from_bytes(raw, "big", signed=True)
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
        reader = _VALUE_READERS.get(tag)
        if reader is not None:
            return reader(self, tag, raw, depth)
        if tag >= 0x80:
            raise self.bad(f"value tag {tag:#04x}")
        return raw  # a reserved tag: passed on as it came

    def integer(self, tag: int, raw: bytes, depth: int) -> int:
        if len(raw) != 4:
            raise self.bad(f"an integer or enum of {len(raw)} octets")
        return int(_I32.unpack(raw)[0])

    def boolean(self, tag: int, raw: bytes, depth: int) -> bool:
        if raw == b"\x01":
            return True
        if raw == b"\x00":
            return False
        raise self.bad("a boolean that is not one octet 0 or 1")

    def out_of_band(self, tag: int, raw: bytes, depth: int) -> OutOfBand:
        if raw:
            raise self.bad(f"an out-of-band value {tag:#04x} with a value")
        return OutOfBand(tag)

    def beg_collection(self, tag: int, raw: bytes, depth: int) -> Collection:
        if raw:
            raise self.bad("a begCollection with a value")
        return self.collection(depth + 1)

    def octet_string(self, tag: int, raw: bytes, depth: int) -> bytes:
        return raw

    def resolution(self, tag: int, raw: bytes, depth: int) -> Resolution:
        if len(raw) != 9:
            raise self.bad(f"a resolution of {len(raw)} octets")
        x, y, units = _RESOLUTION.unpack(raw)
        if units not in (3, 4):
            raise self.bad(f"resolution units {units}")
        return Resolution(x, y, ResolutionUnits(units))

    def range_of_integer(self, tag: int, raw: bytes, depth: int) -> Range:
        if len(raw) != 8:
            raise self.bad(f"a rangeOfInteger of {len(raw)} octets")
        return Range(*_RANGE.unpack(raw))

    def outside_collection(self, tag: int, raw: bytes, depth: int) -> Any:
        raise self.bad(f"value tag {tag:#04x} outside a collection")

    def extension(self, tag: int, raw: bytes, depth: int) -> bytes:
        if len(raw) < 4 or raw[0] & 0x80:
            raise self.bad("an extension value without its four-octet tag")
        return raw

    def date_time(self, tag: int, raw: bytes, depth: int) -> datetime:
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

    def with_language(
        self, tag: int, raw: bytes, depth: int
    ) -> TextWithLanguage | NameWithLanguage:
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
            tag, name, raw = self.next()
            if tag < 0x10:
                raise self.bad("a collection not closed by endCollection")
            if name:
                raise self.bad("a collection member value with a name")
            if tag == _END_COLLECTION:
                if raw:
                    raise self.bad("an endCollection with a value")
                if pending is not None:
                    raise self.bad(f"collection member {pending!r} without a value")
                return Collection(members.values())
            if tag == _MEMBER_ATTR_NAME:
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
                self.new_attribute()
                continue
            if pending is not None:
                current = _attribute(pending, tag, self.value(tag, raw, depth))
                members[pending] = current
                pending = None
            elif current is not None:
                self.values += 1
                if self.values > self.limits.max_values:
                    raise self.too_many_values()
                current.values.append(self.value(tag, raw, depth))
                current.tags.append(tag)
            else:
                raise self.bad("a collection value before any memberAttrName")

    # -- the message (RFC 8010 §3.1.1) --------------------------------------------------

    def message(self) -> Message:
        if self.limit < 8:
            raise self.overrun(8)
        major, minor, code, request_id = _HEADER.unpack_from(self.buf, 0)
        self.pos = 8
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
        max_values = self.limits.max_values
        while True:
            tag, name, raw = self.next()
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
            if name:
                self.new_attribute()
                last = group.add(_attribute(self.attribute_name(name), tag, None))
                last.values.append(self.value(tag, raw, 0))
            elif last is None:
                raise self.bad("an additional value with no attribute before it")
            else:
                self.values += 1
                if self.values > max_values:
                    raise self.too_many_values()
                last.values.append(self.value(tag, raw, 0))
                last.tags.append(tag)
        return Message(
            code,
            request_id,
            groups,
            version=(major, minor),
            data=memoryview(self.source)[self.pos :],
            data_offset=self.pos,
        )


_ValueReader = Callable[[_Reader, int, bytes, int], Any]
_VALUE_READERS: dict[int, _ValueReader] = {
    ValueTag.INTEGER: _Reader.integer,
    ValueTag.ENUM: _Reader.integer,
    ValueTag.BOOLEAN: _Reader.boolean,
    **{tag: _Reader.out_of_band for tag in _OUT_OF_BAND},
    ValueTag.BEG_COLLECTION: _Reader.beg_collection,
    ValueTag.OCTET_STRING: _Reader.octet_string,
    ValueTag.DATE_TIME: _Reader.date_time,
    ValueTag.RESOLUTION: _Reader.resolution,
    ValueTag.RANGE_OF_INTEGER: _Reader.range_of_integer,
    ValueTag.TEXT_WITH_LANGUAGE: _Reader.with_language,
    ValueTag.NAME_WITH_LANGUAGE: _Reader.with_language,
    ValueTag.END_COLLECTION: _Reader.outside_collection,
    ValueTag.MEMBER_ATTR_NAME: _Reader.outside_collection,
    ValueTag.EXTENSION: _Reader.extension,
}


def _attribute(name: str, tag: int, value: Any) -> Attribute:
    # The decoder's values are right by construction: skip Attribute.__init__'s checks.
    attribute = Attribute.__new__(Attribute)
    attribute.name = name
    attribute.tags = [tag]
    attribute.values = [] if value is None else [value]
    return attribute


def decode(data: bytes | bytearray | memoryview, *, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Read a whole message; what follows end-of-attributes-tag becomes `Message.data`.

    `Message.data` is a memoryview of `data` (no copy of the document): a bytearray
    cannot be resized while it lives. Raises `IPPError` (and nothing else) for
    anything malformed or past `limits`.
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


def _text(value: str) -> bytes:
    return value.encode("utf-8")


def _ascii(value: str) -> bytes:
    return value.encode("ascii")


def _integer(value: int) -> bytes:
    if value.__class__ is bool or not isinstance(value, int):
        raise TypeError(f"an integer is needed, not {type(value).__name__}")
    return _I32.pack(value)


def _boolean(value: bool) -> bytes:
    if value is True:
        return b"\x01"
    if value is False:
        return b"\x00"
    raise TypeError(f"a bool is needed, not {type(value).__name__}")


def _nothing(value: object) -> bytes:
    return b""


def _resolution(value: Resolution) -> bytes:
    return _RESOLUTION.pack(value.x, value.y, int(value.units))


def _range(value: Range) -> bytes:
    return _RANGE.pack(value.lower, value.upper)


def _date_time(value: datetime) -> bytes:
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("a dateTime value must be timezone-aware")
    minutes = int(offset.total_seconds()) // 60
    hours, mins = divmod(abs(minutes), 60)
    return _DATE_TIME.pack(
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond // 100_000,
        b"-" if minutes < 0 else b"+",
        hours,
        mins,
    )


def _with_language(text: str, language: str) -> bytes:
    lang = language.encode("ascii")
    if not lang:
        raise ValueError("a natural language is needed")
    encoded = text.encode("utf-8")
    return _U16.pack(len(lang)) + lang + _U16.pack(len(encoded)) + encoded


def _text_with_language(value: TextWithLanguage) -> bytes:
    return _with_language(value.text, value.language)


def _name_with_language(value: NameWithLanguage) -> bytes:
    return _with_language(value.name, value.language)


def _not_a_value(value: object) -> bytes:
    raise ValueError("endCollection and memberAttrName are not values")


_VALUE_WRITERS: dict[int, Callable[[Any], bytes]] = {
    **{tag: _text for tag in _UTF8_TAGS},
    **{tag: _ascii for tag in _ASCII_TAGS},
    ValueTag.INTEGER: _integer,
    ValueTag.ENUM: _integer,
    ValueTag.BOOLEAN: _boolean,
    **{tag: _nothing for tag in _OUT_OF_BAND},
    ValueTag.RESOLUTION: _resolution,
    ValueTag.RANGE_OF_INTEGER: _range,
    ValueTag.DATE_TIME: _date_time,
    ValueTag.TEXT_WITH_LANGUAGE: _text_with_language,
    ValueTag.NAME_WITH_LANGUAGE: _name_with_language,
    ValueTag.END_COLLECTION: _not_a_value,
    ValueTag.MEMBER_ATTR_NAME: _not_a_value,
}


def _raw(tag: int, value: Any) -> bytes:
    """octetString, the extension tag and reserved tags: the value's own bytes."""
    if not 0x10 <= tag <= 0x7F:
        raise ValueError(f"{tag:#04x} is not a value tag")
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"bytes are needed for tag {tag:#04x}, not {type(value).__name__}")
    return bytes(value)


def _write(tag: int, name: bytes, value: Any, out: list[bytes]) -> None:
    """One value as an element (RFC 8010 §3.1.4); a collection as its §3.1.6 sequence."""
    if tag == _BEG_COLLECTION:
        if not isinstance(value, Collection):
            raise TypeError(f"a Collection is needed, not {type(value).__name__}")
        out.append(_TAG_AND_LENGTH.pack(tag, len(name)) + name + b"\x00\x00")
        for member in value.members:
            member_name = member.name.encode("ascii")
            if not 0 < len(member_name) <= 0x7FFF:
                raise ValueError("a collection member needs a name of 1 to 32767 octets")
            # memberAttrName (0x4A), no name, the member's name as its value
            out.append(b"\x4a\x00\x00" + _U16.pack(len(member_name)) + member_name)
            tags, values = member.tags, member.values
            if len(tags) != len(values):
                raise ValueError(f"member {member.name!r}: tags and values differ in number")
            for index, member_value in enumerate(values):
                _write(tags[index], b"", member_value, out)
        out.append(b"\x37\x00\x00\x00\x00")  # endCollection, no name, no value
        return
    writer = _VALUE_WRITERS.get(tag)
    data = _raw(tag, value) if writer is None else writer(value)
    length = len(data)
    if length > 0x7FFF:
        raise ValueError(f"a value of {length} octets (RFC 8010 allows 32767)")
    out.append(_TAG_AND_LENGTH.pack(tag, len(name)) + name + _U16.pack(length) + data)


def encode_attribute(attribute: Attribute) -> bytes:
    """The bytes of one attribute, all its values (RFC 8010 §3.1.4-§3.1.6)."""
    try:
        name = attribute.name.encode("ascii")
        if not name or len(name) > 0x7FFF:
            raise ValueError("an attribute name must be 1 to 32767 US-ASCII octets")
        tags, values = attribute.tags, attribute.values
        if len(tags) != len(values):
            raise ValueError("tags and values differ in number")
        tag = tags[0]
        writer = _VALUE_WRITERS.get(tag)
        if len(values) == 1 and writer is not None:  # the common case, without a list
            data = writer(values[0])
            if len(data) > 0x7FFF:
                raise ValueError(f"a value of {len(data)} octets (RFC 8010 allows 32767)")
            return _TAG_AND_LENGTH.pack(tag, len(name)) + name + _U16.pack(len(data)) + data
        out: list[bytes] = []
        _write(tag, name, values[0], out)
        for index in range(1, len(values)):
            _write(tags[index], b"", values[index], out)
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
