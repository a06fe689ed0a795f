"""What every IPP server does around each operation (RFC 8011 §4.1, §4.2.5.1, §4.3.4).

- `check_request` — the common request checks, in the order a client sees them:
  §4.1.8 version (1.1, 2.0, 2.1, 2.2 by default) → server-error-version-not-supported;
  §4.1.2 request-id 1..2^31-1 → client-error-bad-request; §4.1.4 an operation
  attributes group first, with attributes-charset then attributes-natural-language
  as its first two attributes → client-error-bad-request, and a charset other than
  utf-8/us-ascii → client-error-charset-not-supported; §4.1.3 an attribute twice in
  a group → client-error-bad-request; the operation among those served →
  server-error-operation-not-supported; §4.1.5 the target (printer-uri, or
  job-uri / printer-uri + job-id for a Job operation) → client-error-bad-request.
  It returns a `Request` with those values read; it raises `IPPError` otherwise.
- `select_attributes` — §4.2.5.1 / §4.3.4.1 `requested-attributes`, the groups
  'all', 'job-template', 'printer-description' and 'job-description' expanded
  against the attributes the object has.
- `request` — a client's request with those operation attributes first (tests, and
  printers that fetch their jobs over IPP).
- `response` / `error_response` — §4.1.6: the same request-id, the version the
  request used (or the nearest one served), attributes-charset and
  attributes-natural-language first, status-message, and §4.1.7 the
  unsupported-attributes group; `unsupported` builds one of its entries.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Collection as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Literal

from printcloud.ipp.message import Attribute, Group, GroupTag, IPPError, Message, ValueTag
from printcloud.ipp.model import (
    JOB_TEMPLATE,
    NameWithLanguage,
    Operation,
    Status,
    is_printer_job_template,
)

SUPPORTED_VERSIONS: frozenset[tuple[int, int]] = frozenset({(1, 1), (2, 0), (2, 1), (2, 2)})
CHARSETS: frozenset[str] = frozenset({"utf-8", "us-ascii"})

#: Operations whose target is a Job (RFC 8011 §4.3, RFC 3998, PWG 5100.5/5100.11):
#: job-uri, or printer-uri with job-id. (Create-Job-Subscriptions is not one: RFC 3995
#: targets the Printer and names the job in `notify-job-id`.)
JOB_OPERATIONS: frozenset[int] = frozenset(
    {
        Operation.SEND_DOCUMENT,
        Operation.SEND_URI,
        Operation.CANCEL_JOB,
        Operation.GET_JOB_ATTRIBUTES,
        Operation.HOLD_JOB,
        Operation.RELEASE_JOB,
        Operation.RESTART_JOB,
        Operation.SET_JOB_ATTRIBUTES,
        Operation.REPROCESS_JOB,
        Operation.RESUME_JOB,
        Operation.PROMOTE_JOB,
        Operation.SCHEDULE_JOB_AFTER,
        Operation.CANCEL_DOCUMENT,
        Operation.GET_DOCUMENT_ATTRIBUTES,
        Operation.GET_DOCUMENTS,
        Operation.DELETE_DOCUMENT,
        Operation.SET_DOCUMENT_ATTRIBUTES,
        Operation.RESUBMIT_JOB,
        Operation.CLOSE_JOB,
    }
)

# RFC 5646 Language-Tag, loosely: what a naturalLanguage value must look like.
_LANGUAGE = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*\Z")


@dataclass(frozen=True, slots=True)
class Request:
    """A request that passed `check_request`, with its common operation attributes."""

    message: Message = field(repr=False)
    operation: int
    charset: str
    natural_language: str
    printer_uri: str | None
    job_uri: str | None
    job_id: int | None
    #: requesting-user-name: what the client says, never who it is (RFC 8011 §9.3)
    requesting_user_name: str | None

    @property
    def operation_attributes(self) -> Group:
        group = self.message.operation_attributes
        assert group is not None  # check_request made sure
        return group


def _nearest_version(
    version: tuple[int, int], versions: AbstractSet[tuple[int, int]]
) -> tuple[int, int]:
    if version in versions:
        return version
    same_major = sorted(v for v in versions if v[0] == version[0])
    if same_major:
        return same_major[-1]
    return min(versions, key=lambda v: (abs(v[0] - version[0]), -v[1]))


def check_request(
    message: Message,
    *,
    operations: AbstractSet[int] | None = None,
    versions: AbstractSet[tuple[int, int]] = SUPPORTED_VERSIONS,
    charsets: AbstractSet[str] = CHARSETS,
) -> Request:
    """The RFC 8011 §4.1 checks every request gets; raises `IPPError` with the status.

    `operations` are the operation-ids this endpoint serves (all when None).
    """

    def fail(status: Status, text: str) -> IPPError:
        return IPPError(
            status,
            text,
            request_id=message.request_id,
            version=_nearest_version(message.version, versions),
        )

    version = message.version
    if version not in versions:
        raise fail(
            Status.SERVER_ERROR_VERSION_NOT_SUPPORTED, f"IPP version {version[0]}.{version[1]}"
        )
    if not 0 < message.request_id <= 0x7FFFFFFF:
        raise fail(Status.CLIENT_ERROR_BAD_REQUEST, f"request-id {message.request_id}")
    if not message.groups or message.groups[0].tag != GroupTag.OPERATION:
        raise fail(Status.CLIENT_ERROR_BAD_REQUEST, "no operation attributes group first")
    if len(message.groups_of(GroupTag.OPERATION)) > 1:
        raise fail(Status.CLIENT_ERROR_BAD_REQUEST, "two operation attributes groups")
    for group in message.groups:
        if group.repeated:
            raise fail(
                Status.CLIENT_ERROR_BAD_REQUEST,
                f"attribute {group.repeated[0]!r} given twice in one group",
            )
    operation_group = message.groups[0]
    attributes = operation_group.attributes
    if (
        len(attributes) < 2
        or attributes[0].name != "attributes-charset"
        or attributes[1].name != "attributes-natural-language"
    ):
        raise fail(
            Status.CLIENT_ERROR_BAD_REQUEST,
            "attributes-charset and attributes-natural-language must come first, in this order",
        )
    charset_attribute, language_attribute = attributes[0], attributes[1]
    if charset_attribute.tags != [ValueTag.CHARSET]:
        raise fail(Status.CLIENT_ERROR_BAD_REQUEST, "attributes-charset must be one charset")
    if language_attribute.tags != [ValueTag.NATURAL_LANGUAGE] or not _LANGUAGE.match(
        language_attribute.value
    ):
        raise fail(
            Status.CLIENT_ERROR_BAD_REQUEST,
            "attributes-natural-language must be one naturalLanguage",
        )
    charset = charset_attribute.value.lower()
    if charset not in charsets:
        error = fail(Status.CLIENT_ERROR_CHARSET_NOT_SUPPORTED, f"charset {charset!r}")
        error.unsupported.append(charset_attribute)
        raise error
    if operations is not None and message.code not in operations:
        raise fail(Status.SERVER_ERROR_OPERATION_NOT_SUPPORTED, f"operation-id {message.code:#06x}")

    printer_uri = _single(operation_group, "printer-uri", (ValueTag.URI,), fail)
    job_uri = _single(operation_group, "job-uri", (ValueTag.URI,), fail)
    job_id = _single(operation_group, "job-id", (ValueTag.INTEGER,), fail)
    user = _single(
        operation_group,
        "requesting-user-name",
        (ValueTag.NAME, ValueTag.NAME_WITH_LANGUAGE),
        fail,
    )
    if job_id is not None and job_id < 1:
        raise fail(Status.CLIENT_ERROR_BAD_REQUEST, f"job-id {job_id}")
    if message.code in JOB_OPERATIONS:
        if job_uri is None and (printer_uri is None or job_id is None):
            raise fail(Status.CLIENT_ERROR_BAD_REQUEST, "no job-uri, nor printer-uri with job-id")
    elif printer_uri is None:
        raise fail(Status.CLIENT_ERROR_BAD_REQUEST, "no printer-uri operation attribute")
    return Request(
        message=message,
        operation=message.code,
        charset=charset,
        natural_language=language_attribute.value.lower(),
        printer_uri=printer_uri,
        job_uri=job_uri,
        job_id=job_id,
        requesting_user_name=str(user) if isinstance(user, str | NameWithLanguage) else None,
    )


def _single(
    group: Group, name: str, tags: Sequence[int], fail: Callable[[Status, str], IPPError]
) -> Any:
    attribute = group.get(name)
    if attribute is None:
        return None
    if len(attribute.values) != 1 or attribute.tag not in tags:
        raise fail(Status.CLIENT_ERROR_BAD_REQUEST, f"{name} must be one value of its syntax")
    return attribute.value


def requested_names(request: Message, default: Sequence[str] = ("all",)) -> list[str]:
    """The keywords of `requested-attributes` in the operation group, or `default`."""
    attribute = request.get(GroupTag.OPERATION, "requested-attributes")
    if attribute is None:
        return list(default)
    return [
        v for v, t in zip(attribute.values, attribute.tags, strict=True) if t == ValueTag.KEYWORD
    ]


def select_attributes(
    requested: Iterable[str],
    available: Iterable[str],
    *,
    target: Literal["printer", "job"],
    explicit_only: AbstractSet[str] = frozenset(),
) -> tuple[list[str], list[str]]:
    """`requested-attributes` against the names an object has (RFC 8011 §4.2.5.1, §4.3.4.1).

    Returns the names to answer with, in `available`'s order, and the requested
    names the object does not have (for the unsupported-attributes group, if the
    caller wants it). `explicit_only` names (e.g. `media-col-database`) are
    answered only when asked for by name, never through a group keyword.
    """
    names = list(available)
    have = set(names)
    groups: dict[str, Callable[[str], bool]]
    if target == "printer":
        groups = {
            "job-template": is_printer_job_template,
            "printer-description": lambda n: not is_printer_job_template(n),
        }
    else:
        groups = {
            "job-template": lambda n: n in JOB_TEMPLATE,
            "job-description": lambda n: n not in JOB_TEMPLATE,
        }
    wanted: set[str] = set()
    unknown: list[str] = []
    for keyword in requested:
        member = groups.get(keyword)
        if keyword == "all":
            wanted.update(n for n in names if n not in explicit_only)
        elif member is not None:
            wanted.update(n for n in names if n not in explicit_only and member(n))
        elif keyword in have:
            wanted.add(keyword)
        elif keyword not in unknown:
            unknown.append(keyword)
    return [n for n in names if n in wanted], unknown


def unsupported(attribute: Attribute | str, values: Sequence[object] | None = None) -> Attribute:
    """An entry of the unsupported-attributes group (RFC 8011 §4.1.7).

    An attribute the printer does not support at all comes back with the
    out-of-band value `unsupported`; an attribute with unsupported values comes
    back with those values (`values`, or all of the attribute's).
    """
    if isinstance(attribute, str):
        return Attribute(attribute, ValueTag.UNSUPPORTED)
    if values is None:
        return Attribute(attribute.name, attribute.tag, list(attribute.values), tags=attribute.tags)
    chosen = [(t, v) for t, v in zip(attribute.tags, attribute.values, strict=True) if v in values]
    if not chosen:
        return Attribute(attribute.name, ValueTag.UNSUPPORTED)
    return Attribute(
        attribute.name, chosen[0][0], [v for _, v in chosen], tags=[t for t, _ in chosen]
    )


def request(
    operation: int,
    *,
    printer_uri: str | None = None,
    job_uri: str | None = None,
    job_id: int | None = None,
    requesting_user_name: str | None = None,
    attributes: Iterable[Attribute] = (),
    groups: Iterable[Group] = (),
    request_id: int = 1,
    version: tuple[int, int] = (2, 0),
    natural_language: str = "en",
    data: bytes = b"",
) -> Message:
    """A request as a client sends it (RFC 8011 §4.1.4, §4.1.5): attributes-charset,
    attributes-natural-language, the target, requesting-user-name, then `attributes`
    in the operation group; `groups` (job attributes, ...) after it."""
    operation_group = Group(
        GroupTag.OPERATION,
        [
            Attribute("attributes-charset", ValueTag.CHARSET, "utf-8"),
            Attribute("attributes-natural-language", ValueTag.NATURAL_LANGUAGE, natural_language),
        ],
    )
    if printer_uri is not None:
        operation_group.add(Attribute("printer-uri", ValueTag.URI, printer_uri))
    if job_uri is not None:
        operation_group.add(Attribute("job-uri", ValueTag.URI, job_uri))
    if job_id is not None:
        operation_group.add(Attribute("job-id", ValueTag.INTEGER, job_id))
    if requesting_user_name is not None:
        operation_group.add(Attribute("requesting-user-name", ValueTag.NAME, requesting_user_name))
    for attribute in attributes:
        operation_group.add(attribute)
    return Message(operation, request_id, [operation_group, *groups], version=version, data=data)


def response(
    request: Message,
    status: Status = Status.SUCCESSFUL_OK,
    groups: Iterable[Group] = (),
    *,
    unsupported_attributes: Iterable[Attribute] = (),
    status_message: str | None = None,
    natural_language: str = "en",
    versions: AbstractSet[tuple[int, int]] = SUPPORTED_VERSIONS,
) -> Message:
    """The answer to `request` (RFC 8011 §4.1.6): its request-id, operation group first."""
    operation_group = Group(
        GroupTag.OPERATION,
        [
            Attribute("attributes-charset", ValueTag.CHARSET, "utf-8"),
            Attribute("attributes-natural-language", ValueTag.NATURAL_LANGUAGE, natural_language),
        ],
    )
    if status_message:
        # text(255): cut at a character boundary
        text = status_message.encode("utf-8")[:255].decode("utf-8", "ignore")
        operation_group.add(Attribute("status-message", ValueTag.TEXT, text))
    out = [operation_group]
    extra = list(unsupported_attributes)
    if extra:
        out.append(Group(GroupTag.UNSUPPORTED, extra))
    out.extend(groups)
    return Message(
        int(status),
        request.request_id,
        out,
        version=_nearest_version(request.version, versions),
    )


def error_response(
    error: IPPError,
    *,
    natural_language: str = "en",
    versions: AbstractSet[tuple[int, int]] = SUPPORTED_VERSIONS,
) -> Message:
    """The answer to a request that failed decoding or `check_request`."""
    return response(
        Message(0, error.request_id, version=error.version),
        error.status,
        unsupported_attributes=error.unsupported,
        status_message=error.description,
        natural_language=natural_language,
        versions=versions,
    )
