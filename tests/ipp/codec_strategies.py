"""Hypothesis strategies for IPP messages: every value syntax of RFC 8010 §3.5.2,
1setOf with mixed tags, nested collections, out-of-band and unknown tags."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from printcloud.ipp import (
    Attribute,
    Collection,
    Group,
    Message,
    NameWithLanguage,
    OutOfBand,
    Range,
    Resolution,
    ResolutionUnits,
    TextWithLanguage,
    ValueTag,
)

INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
ASCII = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
NAMES = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-_."), min_size=1, max_size=40)
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
LANGUAGES = st.sampled_from(["en", "en-us", "fr-ca", "de", "zh-hans-cn", "x-klingon"])


@st.composite
def _date_times(draw: st.DrawFn) -> datetime:
    minutes = draw(st.integers(min_value=-(14 * 60 + 59), max_value=14 * 60 + 59))
    naive = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
    return naive.replace(
        microsecond=naive.microsecond // 100_000 * 100_000,
        tzinfo=timezone(timedelta(minutes=minutes)),
    )


#: tag -> strategy of values of that syntax (collections apart)
SIMPLE: dict[int, st.SearchStrategy[Any]] = {
    ValueTag.INTEGER: INT32,
    ValueTag.ENUM: INT32,
    ValueTag.BOOLEAN: st.booleans(),
    ValueTag.OCTET_STRING: st.binary(max_size=40),
    ValueTag.DATE_TIME: _date_times(),
    ValueTag.RESOLUTION: st.builds(Resolution, INT32, INT32, st.sampled_from(ResolutionUnits)),
    ValueTag.RANGE_OF_INTEGER: st.builds(Range, INT32, INT32),
    ValueTag.TEXT_WITH_LANGUAGE: st.builds(TextWithLanguage, TEXT, LANGUAGES),
    ValueTag.NAME_WITH_LANGUAGE: st.builds(NameWithLanguage, TEXT, LANGUAGES),
    ValueTag.TEXT: TEXT,
    ValueTag.NAME: TEXT,
    ValueTag.KEYWORD: NAMES,
    ValueTag.URI: ASCII,
    ValueTag.URI_SCHEME: NAMES,
    ValueTag.CHARSET: NAMES,
    ValueTag.NATURAL_LANGUAGE: LANGUAGES,
    ValueTag.MIME_MEDIA_TYPE: ASCII,
    # reserved tags and the extension tag: raw bytes, passed on unchanged
    0x38: st.binary(max_size=20),
    0x4B: st.binary(max_size=20),
    0x65: st.binary(max_size=20),
    ValueTag.EXTENSION: st.tuples(st.integers(0, 0x7FFFFFFF), st.binary(max_size=20)).map(
        lambda t: t[0].to_bytes(4, "big") + t[1]
    ),
}


def _values_of(tag: int, values: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[int, Any]]:
    return values.map(lambda v: (tag, v))


def _tagged(collections: st.SearchStrategy[Collection]) -> st.SearchStrategy[tuple[int, Any]]:
    simple = [_values_of(tag, strategy) for tag, strategy in SIMPLE.items()]
    return st.one_of(*simple, _values_of(ValueTag.BEG_COLLECTION, collections))


def _attribute(
    name: st.SearchStrategy[str], collections: st.SearchStrategy[Collection]
) -> st.SearchStrategy[Attribute]:
    out_of_band = st.builds(Attribute, name, st.sampled_from([int(t) for t in OutOfBand]))
    one_syntax = st.tuples(
        name, st.sampled_from([*SIMPLE, ValueTag.BEG_COLLECTION]), st.integers(1, 4)
    ).flatmap(
        lambda t: st.lists(SIMPLE.get(t[1], collections), min_size=1, max_size=t[2]).map(
            lambda values: Attribute(t[0], t[1], values)
        )
    )
    mixed = st.tuples(name, st.lists(_tagged(collections), min_size=2, max_size=4)).map(
        lambda t: Attribute(t[0], t[1][0][0], [v for _, v in t[1]], tags=[tag for tag, _ in t[1]])
    )
    return st.one_of(out_of_band, one_syntax, mixed)


def _collections(children: st.SearchStrategy[Collection]) -> st.SearchStrategy[Collection]:
    members = st.lists(_attribute(NAMES, children), max_size=4, unique_by=lambda a: a.name)
    return members.map(Collection)


#: collections nested at most 3 deep (the decoder allows 8 by default)
COLLECTIONS: st.SearchStrategy[Collection] = st.recursive(
    st.just(Collection()), _collections, max_leaves=6
)
ATTRIBUTES = _attribute(NAMES, COLLECTIONS)
GROUP_TAGS = st.sampled_from([0x01, 0x02, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0F])

GROUPS = st.builds(Group, GROUP_TAGS, st.lists(ATTRIBUTES, max_size=6))


MESSAGES = st.builds(
    lambda version, code, request_id, groups, data: Message(
        code, request_id, groups, version=version, data=data
    ),
    st.tuples(st.sampled_from([1, 2]), st.integers(0, 255)),
    st.integers(0, 0xFFFF),
    INT32,
    st.lists(GROUPS, max_size=4),
    st.binary(max_size=64),
)


_COMMON = [
    Attribute("attributes-charset", ValueTag.CHARSET, "utf-8"),
    Attribute("attributes-natural-language", ValueTag.NATURAL_LANGUAGE, "en"),
    Attribute("printer-uri", ValueTag.URI, "ipp://127.0.0.1/ipp/print"),
    Attribute("job-uri", ValueTag.URI, "ipp://127.0.0.1/ipp/print/1"),
    Attribute("job-id", ValueTag.INTEGER, 1),
    Attribute("requesting-user-name", ValueTag.NAME, "alice"),
    Attribute("attributes-charset", ValueTag.CHARSET, "iso-8859-1"),
    Attribute("job-id", ValueTag.KEYWORD, "one"),
]


@st.composite
def _requests(draw: st.DrawFn) -> Message:
    """Requests near the valid ones: the common operation attributes, some left out,
    reordered, repeated or of the wrong syntax, then random attributes and groups."""
    common = draw(st.lists(st.sampled_from(_COMMON), max_size=6))
    if draw(st.booleans()):
        common = [_COMMON[0], _COMMON[1], *common]
    extra = draw(st.lists(ATTRIBUTES, max_size=3))
    groups = [Group(0x01, [*common, *extra]), *draw(st.lists(GROUPS, max_size=2))]
    return Message(
        draw(st.sampled_from([0x0002, 0x0004, 0x0006, 0x0008, 0x000A, 0x000B, 0x003B, 0x4002])),
        draw(st.sampled_from([-1, 0, 1, 2**31 - 1])),
        groups,
        version=draw(st.sampled_from([(1, 0), (1, 1), (2, 0), (2, 2), (2, 3)])),
    )


REQUESTS = _requests()
