"""An IPP message as Python objects (RFC 8010 §3.1-§3.5, RFC 8011 §4.1).

- `GroupTag` (RFC 8010 §3.5.1 delimiter tags) and `ValueTag` (§3.5.2 value tags):
  every attribute value carries the tag of its syntax, because one Python type
  stands for several syntaxes (`str` is keyword, uri, name, text, ...).
- `Attribute`: a name and one or more values (1setOf, §3.1.5), each with its
  tag; `Collection` (§3.1.6): the member attributes of one collection value.
- `Group`: an attribute group in message order, with lookup by name.
- `Message`: version, operation-id or status-code, request-id, the groups in
  order, and the document data that follows end-of-attributes-tag.
- `IPPError`: every failure to read a request, carrying the IPP status the
  server answers with (and the request-id, when it could be read).

`encoding.py` turns a `Message` into bytes and back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence, ValuesView
from datetime import datetime
from enum import IntEnum
from typing import Any, TypeAlias

from printcloud.core.errors import InvalidRequest
from printcloud.ipp.model import (
    NameWithLanguage,
    Operation,
    OutOfBand,
    Range,
    Resolution,
    Status,
    TextWithLanguage,
)


class GroupTag(IntEnum):
    """begin-attribute-group-tag values (RFC 8010 §3.5.1; RFC 3995, PWG 5100.5/5100.22)."""

    OPERATION = 0x01
    JOB = 0x02
    END = 0x03  # end-of-attributes-tag: not a group, ends the attribute section
    PRINTER = 0x04
    UNSUPPORTED = 0x05
    SUBSCRIPTION = 0x06
    EVENT_NOTIFICATION = 0x07
    RESOURCE = 0x08
    DOCUMENT = 0x09
    SYSTEM = 0x0A


class ValueTag(IntEnum):
    """value-tag values (RFC 8010 §3.5.2, RFC 3380 for 0x15-0x17)."""

    # out-of-band
    UNSUPPORTED = 0x10
    UNKNOWN = 0x12
    NO_VALUE = 0x13
    NOT_SETTABLE = 0x15
    DELETE_ATTRIBUTE = 0x16
    ADMIN_DEFINE = 0x17
    # integer types
    INTEGER = 0x21
    BOOLEAN = 0x22
    ENUM = 0x23
    # octetString types
    OCTET_STRING = 0x30
    DATE_TIME = 0x31
    RESOLUTION = 0x32
    RANGE_OF_INTEGER = 0x33
    BEG_COLLECTION = 0x34
    TEXT_WITH_LANGUAGE = 0x35
    NAME_WITH_LANGUAGE = 0x36
    END_COLLECTION = 0x37
    # character-string types
    TEXT = 0x41  # textWithoutLanguage
    NAME = 0x42  # nameWithoutLanguage
    KEYWORD = 0x44
    URI = 0x45
    URI_SCHEME = 0x46
    CHARSET = 0x47
    NATURAL_LANGUAGE = 0x48
    MIME_MEDIA_TYPE = 0x49
    MEMBER_ATTR_NAME = 0x4A
    # the next four octets of the value name the real tag (RFC 8010 §3.5.2)
    EXTENSION = 0x7F


#: A value as Python holds it. Which syntax it has is the tag next to it.
Value: TypeAlias = (
    "int | bool | str | bytes | datetime | Resolution | Range | TextWithLanguage"
    " | NameWithLanguage | Collection | OutOfBand"
)

_OUT_OF_BAND = frozenset(int(t) for t in OutOfBand)


class Attribute:
    """One attribute: a name and its values (1setOf when more than one).

    `Attribute("copies", ValueTag.INTEGER, 2)`, `Attribute("sides-supported",
    ValueTag.KEYWORD, ["one-sided", "two-sided-long-edge"])`. A 1setOf whose
    values have different syntaxes (keyword | name, e.g. `media`) gives `tags`,
    one per value. An out-of-band value is its own tag:
    `Attribute("printer-name", ValueTag.NO_VALUE)`.
    Values of a tag this codec does not know (reserved ones, 0x7F extensions)
    are the raw value `bytes`, kept with their tag so they encode back unchanged.
    """

    __slots__ = ("name", "tags", "values")

    def __init__(
        self,
        name: str,
        tag: int,
        values: Any = None,
        *,
        tags: Sequence[int] | None = None,
    ) -> None:
        self.name = name
        if values is None:
            if tag not in _OUT_OF_BAND:
                raise ValueError(f"attribute {name!r}: a value is needed for tag {tag:#04x}")
            values = [OutOfBand(tag)]
        elif not isinstance(values, list | tuple):
            values = [values]
        self.values: list[Any] = list(values)
        if not self.values:
            raise ValueError(f"attribute {name!r} has no value")
        if tags is None:
            self.tags: list[int] = [tag] * len(self.values)
        else:
            if len(tags) != len(self.values) or tags[0] != tag:
                raise ValueError(f"attribute {name!r}: tags must match the values one to one")
            self.tags = list(tags)

    @property
    def tag(self) -> int:
        """The tag of the first value: the attribute's syntax, as a rule."""
        return self.tags[0]

    @property
    def value(self) -> Any:
        """The first value (most attributes have exactly one)."""
        return self.values[0]

    @property
    def out_of_band(self) -> bool:
        return self.tags[0] in _OUT_OF_BAND

    def add(self, value: Any, tag: int | None = None) -> None:
        """Append one more value (of the first value's tag unless given)."""
        self.values.append(value)
        self.tags.append(self.tags[0] if tag is None else tag)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Attribute):
            return NotImplemented
        return (
            self.name == other.name
            and self.tags == other.tags
            and _values_equal(self.values, other.values)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        tag = _tag_name(self.tags[0])
        shown = self.values[0] if len(self.values) == 1 else self.values
        mixed = "" if len(set(self.tags)) == 1 else f", tags={[_tag_name(t) for t in self.tags]}"
        return f"Attribute({self.name!r}, {tag}, {shown!r}{mixed})"


def _values_equal(a: list[Any], b: list[Any]) -> bool:
    # An IntEnum equals its int (JobState.COMPLETED == 9), but a bool is not an int here
    # (True == 1 in Python). Aware datetimes compare instants: the UTC offset must match
    # too for the same wire bytes.
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x != y or isinstance(x, bool) is not isinstance(y, bool):
            return False
        if isinstance(x, datetime) and x.utcoffset() != y.utcoffset():
            return False
    return True


def _tag_name(tag: int) -> str:
    try:
        return f"ValueTag.{ValueTag(tag).name}"
    except ValueError:
        return f"{tag:#04x}"


class Collection(Mapping[str, Attribute]):
    """A collection value (RFC 8010 §3.1.6, RFC 8011 §5.1.6): member attributes by name.

    `Collection([Attribute("x-dimension", ValueTag.INTEGER, 21000), ...])`;
    `col["media-size"].value["x-dimension"].value`. Members keep their order.
    """

    __slots__ = ("_members",)

    def __init__(self, members: Iterable[Attribute] = ()) -> None:
        self._members: dict[str, Attribute] = {}
        for member in members:
            if member.name in self._members:
                raise ValueError(f"collection member {member.name!r} given twice")
            self._members[member.name] = member

    def __getitem__(self, name: str) -> Attribute:
        return self._members[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Collection):
            return NotImplemented
        return list(self._members.values()) == list(other._members.values())

    __hash__ = None  # type: ignore[assignment]

    @property
    def members(self) -> ValuesView[Attribute]:
        """The member attributes, in order."""
        return self._members.values()

    def __repr__(self) -> str:
        return f"Collection({list(self.members)!r})"


class Group:
    """One attribute group (RFC 8010 §3.1.2) in message order, with lookup by name.

    Add attributes with `add()` (or the constructor): the name index follows it.
    A name given twice stays in `attributes` and is listed in `repeated`
    (RFC 8011 §4.1.3 makes that a bad request; `operations.check_request` says so);
    lookup returns its first occurrence.
    """

    __slots__ = ("_attributes", "_index", "repeated", "tag")

    def __init__(self, tag: int, attributes: Iterable[Attribute] = ()) -> None:
        self.tag = tag
        self._attributes: list[Attribute] = []
        self._index: dict[str, Attribute] = {}
        self.repeated: list[str] = []
        for attribute in attributes:
            self.add(attribute)

    def add(self, attribute: Attribute) -> Attribute:
        self._attributes.append(attribute)
        if attribute.name in self._index:
            self.repeated.append(attribute.name)
        else:
            self._index[attribute.name] = attribute
        return attribute

    @property
    def attributes(self) -> Sequence[Attribute]:
        return tuple(self._attributes)

    def get(self, name: str) -> Attribute | None:
        return self._index.get(name)

    def __getitem__(self, name: str) -> Attribute:
        return self._index[name]

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[Attribute]:
        return iter(self._attributes)

    def __len__(self) -> int:
        return len(self._attributes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Group):
            return NotImplemented
        return self.tag == other.tag and self._attributes == other._attributes

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        try:
            tag = f"GroupTag.{GroupTag(self.tag).name}"
        except ValueError:
            tag = f"{self.tag:#04x}"
        return f"Group({tag}, {self._attributes!r})"


class Message:
    """A request or a response (RFC 8010 §3.1.1).

    `code` is the operation-id of a request or the status-code of a response
    (`operation` / `status` give the enum when the value is a known one).
    `data` is what follows end-of-attributes-tag (the document of Print-Job and
    Send-Document), starting at `data_offset` in the decoded bytes.
    """

    __slots__ = ("code", "data", "data_offset", "groups", "request_id", "version")

    def __init__(
        self,
        code: int,
        request_id: int,
        groups: Iterable[Group] = (),
        *,
        version: tuple[int, int] = (2, 0),
        data: bytes | memoryview = b"",
        data_offset: int = 0,
    ) -> None:
        self.version = version
        self.code = code
        self.request_id = request_id
        self.groups: list[Group] = list(groups)
        self.data = data
        self.data_offset = data_offset

    @property
    def operation(self) -> Operation | None:
        try:
            return Operation(self.code)
        except ValueError:
            return None

    @property
    def status(self) -> Status | None:
        try:
            return Status(self.code)
        except ValueError:
            return None

    def group(self, tag: int) -> Group | None:
        """The first group with this tag."""
        for group in self.groups:
            if group.tag == tag:
                return group
        return None

    def groups_of(self, tag: int) -> list[Group]:
        """Every group with this tag, in order (Get-Jobs answers one job group per job)."""
        return [group for group in self.groups if group.tag == tag]

    def get(self, tag: int, name: str) -> Attribute | None:
        """Attribute `name` of the first group with this tag."""
        group = self.group(tag)
        return None if group is None else group.get(name)

    def value(self, tag: int, name: str, default: Any = None) -> Any:
        """The first value of attribute `name` in group `tag`, or `default`."""
        attribute = self.get(tag, name)
        return default if attribute is None else attribute.values[0]

    def add_group(self, tag: int, attributes: Iterable[Attribute] = ()) -> Group:
        group = Group(tag, attributes)
        self.groups.append(group)
        return group

    @property
    def operation_attributes(self) -> Group | None:
        return self.group(GroupTag.OPERATION)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (
            self.version == other.version
            and self.code == other.code
            and self.request_id == other.request_id
            and self.groups == other.groups
            and bytes(self.data) == bytes(other.data)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Message(code={self.code:#06x}, request_id={self.request_id}, "
            f"version={self.version}, groups={self.groups!r}, data={len(self.data)} bytes)"
        )


class IPPError(InvalidRequest):
    """A request the server cannot take, with the IPP status to answer it with.

    The decoder raises only this: `client-error-bad-request` for malformed bytes,
    `client-error-request-entity-too-large` past the size/count limits,
    `client-error-request-value-too-long` for a name or value past its limit,
    `server-error-version-not-supported` for a major version other than 1 or 2.
    `operations.check_request` raises it with the RFC 8011 §4.1 statuses.
    `request_id` and `version` are those of the request when they could be read
    (0 and (1, 1) otherwise), so the answer can echo them; `unsupported` holds the
    attributes to return in the unsupported-attributes group.
    """

    error = "ipp_error"

    def __init__(
        self,
        status: Status,
        description: str,
        *,
        request_id: int = 0,
        version: tuple[int, int] = (1, 1),
        unsupported: Sequence[Attribute] = (),
    ) -> None:
        super().__init__(description)
        self.status = status
        self.request_id = request_id
        self.version = version
        self.unsupported = list(unsupported)

    def __str__(self) -> str:
        return f"{self.status.keyword}: {self.description}"
