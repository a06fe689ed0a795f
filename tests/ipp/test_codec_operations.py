"""RFC 8011 §4.1 request checks, requested-attributes, and responses (ipp/operations.py),
and the model's names (ipp/model.py)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from printcloud import ipp
from printcloud.ipp import (
    Attribute,
    Group,
    GroupTag,
    IPPError,
    JobState,
    Message,
    NameWithLanguage,
    Operation,
    OutOfBand,
    Status,
    ValueTag,
)
from printcloud.ipp.model import is_printer_job_template
from tests.ipp.codec_strategies import REQUESTS

URI = "ipp://127.0.0.1:8631/ipp/print/acme/office"


def charset(value: str = "utf-8", tag: int = ValueTag.CHARSET) -> Attribute:
    return Attribute("attributes-charset", tag, value)


def language(value: str = "en") -> Attribute:
    return Attribute("attributes-natural-language", ValueTag.NATURAL_LANGUAGE, value)


def request(
    *operation_attributes: Attribute,
    code: int = Operation.GET_PRINTER_ATTRIBUTES,
    request_id: int = 1,
    version: tuple[int, int] = (2, 0),
    groups: tuple[Group, ...] = (),
) -> Message:
    if not operation_attributes:
        operation_attributes = (
            charset(),
            language(),
            Attribute("printer-uri", ValueTag.URI, URI),
        )
    return Message(
        code,
        request_id,
        [Group(GroupTag.OPERATION, operation_attributes), *groups],
        version=version,
    )


def refused(message: Message, **kwargs: object) -> IPPError:
    with pytest.raises(IPPError) as caught:
        ipp.check_request(message, **kwargs)  # type: ignore[arg-type]
    # whatever was refused, the answer echoes the request-id and encodes
    answer = ipp.error_response(caught.value)
    assert answer.request_id == message.request_id
    assert ipp.decode(ipp.encode(answer)) == answer
    return caught.value


def test_a_good_request_gives_its_common_attributes() -> None:
    checked = ipp.check_request(
        request(
            charset("UTF-8"),
            language("en-US"),
            Attribute("printer-uri", ValueTag.URI, URI),
            Attribute(
                "requesting-user-name", ValueTag.NAME_WITH_LANGUAGE, NameWithLanguage("bob", "en")
            ),
            code=Operation.PRINT_JOB,
        ),
        operations={Operation.PRINT_JOB},
    )
    assert checked.operation == Operation.PRINT_JOB
    assert (checked.charset, checked.natural_language) == ("utf-8", "en-us")
    assert checked.printer_uri == URI and checked.job_uri is None and checked.job_id is None
    assert checked.requesting_user_name == "bob"
    assert checked.operation_attributes["printer-uri"].value == URI


@pytest.mark.parametrize("version", [(1, 1), (2, 0), (2, 1), (2, 2)])
def test_versions_served(version: tuple[int, int]) -> None:
    assert ipp.check_request(request(version=version)).message.version == version


@pytest.mark.parametrize(
    ("version", "answered_with"), [((1, 0), (1, 1)), ((2, 3), (2, 2)), ((2, 9), (2, 2))]
)
def test_other_versions_are_not_supported(
    version: tuple[int, int], answered_with: tuple[int, int]
) -> None:
    error = refused(request(version=version))
    assert error.status == Status.SERVER_ERROR_VERSION_NOT_SUPPORTED
    assert error.version == answered_with
    assert ipp.error_response(error).version == answered_with


@pytest.mark.parametrize("request_id", [0, -1])
def test_request_id_must_be_positive(request_id: int) -> None:
    assert refused(request(request_id=request_id)).status == Status.CLIENT_ERROR_BAD_REQUEST


BAD_OPERATION_GROUPS = {
    "empty": (),
    "no natural language": (charset(), Attribute("printer-uri", ValueTag.URI, URI)),
    "no charset": (language(), Attribute("printer-uri", ValueTag.URI, URI)),
    "language before charset": (language(), charset(), Attribute("printer-uri", ValueTag.URI, URI)),
    "charset as a keyword": (
        charset(tag=ValueTag.KEYWORD),
        language(),
        Attribute("printer-uri", ValueTag.URI, URI),
    ),
    "language not a language tag": (
        charset(),
        language("en us"),
        Attribute("printer-uri", ValueTag.URI, URI),
    ),
    "no printer-uri": (charset(), language()),
    "printer-uri as a keyword": (
        charset(),
        language(),
        Attribute("printer-uri", ValueTag.KEYWORD, URI),
    ),
    "two printer-uri values": (
        charset(),
        language(),
        Attribute("printer-uri", ValueTag.URI, [URI, URI]),
    ),
    "printer-uri twice": (
        charset(),
        language(),
        Attribute("printer-uri", ValueTag.URI, URI),
        Attribute("printer-uri", ValueTag.URI, URI),
    ),
}


@pytest.mark.parametrize("attributes", BAD_OPERATION_GROUPS.values(), ids=BAD_OPERATION_GROUPS)
def test_bad_operation_groups_are_bad_requests(attributes: tuple[Attribute, ...]) -> None:
    message = Message(Operation.GET_PRINTER_ATTRIBUTES, 3, [Group(GroupTag.OPERATION, attributes)])
    assert refused(message).status == Status.CLIENT_ERROR_BAD_REQUEST


def test_group_structure_is_checked() -> None:
    job_first = Message(Operation.PRINT_JOB, 3, [Group(GroupTag.JOB), *request().groups])
    assert refused(job_first).status == Status.CLIENT_ERROR_BAD_REQUEST
    twice = request(groups=(Group(GroupTag.OPERATION),))
    assert refused(twice).status == Status.CLIENT_ERROR_BAD_REQUEST
    repeated_in_job = request(
        groups=(
            Group(
                GroupTag.JOB,
                [
                    Attribute("copies", ValueTag.INTEGER, 1),
                    Attribute("copies", ValueTag.INTEGER, 2),
                ],
            ),
        )
    )
    error = refused(repeated_in_job)
    assert error.status == Status.CLIENT_ERROR_BAD_REQUEST and "copies" in error.description


def test_unsupported_charset_comes_back_in_the_unsupported_group() -> None:
    error = refused(
        request(charset("iso-8859-1"), language(), Attribute("printer-uri", ValueTag.URI, URI))
    )
    assert error.status == Status.CLIENT_ERROR_CHARSET_NOT_SUPPORTED
    answer = ipp.error_response(error)
    assert answer.get(GroupTag.UNSUPPORTED, "attributes-charset").value == "iso-8859-1"
    assert answer.value(GroupTag.OPERATION, "attributes-charset") == "utf-8"


def test_operation_not_served() -> None:
    error = refused(request(code=Operation.PURGE_JOBS), operations={Operation.PRINT_JOB})
    assert error.status == Status.SERVER_ERROR_OPERATION_NOT_SUPPORTED
    error = refused(request(code=0x3FFF), operations={Operation.PRINT_JOB})
    assert error.status == Status.SERVER_ERROR_OPERATION_NOT_SUPPORTED


def test_job_operations_need_a_job_target() -> None:
    printer_only = request(code=Operation.CANCEL_JOB)
    assert refused(printer_only).status == Status.CLIENT_ERROR_BAD_REQUEST
    by_id = ipp.check_request(
        request(
            charset(),
            language(),
            Attribute("printer-uri", ValueTag.URI, URI),
            Attribute("job-id", ValueTag.INTEGER, 12),
            code=Operation.CANCEL_JOB,
        )
    )
    assert by_id.job_id == 12
    by_uri = ipp.check_request(
        request(
            charset(),
            language(),
            Attribute("job-uri", ValueTag.URI, f"{URI}/12"),
            code=Operation.GET_JOB_ATTRIBUTES,
        )
    )
    assert by_uri.job_uri == f"{URI}/12" and by_uri.printer_uri is None
    zero = request(
        charset(),
        language(),
        Attribute("printer-uri", ValueTag.URI, URI),
        Attribute("job-id", ValueTag.INTEGER, 0),
        code=Operation.CANCEL_JOB,
    )
    assert refused(zero).status == Status.CLIENT_ERROR_BAD_REQUEST


# -- requested-attributes ---------------------------------------------------------------

PRINTER = [
    "copies-default",
    "copies-supported",
    "media-col-database",
    "media-col-default",
    "media-ready",
    "printer-name",
    "printer-state",
    "sides-supported",
]


@pytest.mark.parametrize(
    ("requested", "selected"),
    [
        (["all"], [n for n in PRINTER if n != "media-col-database"]),
        (["all", "media-col-database"], PRINTER),
        (
            ["job-template"],
            [
                "copies-default",
                "copies-supported",
                "media-col-default",
                "media-ready",
                "sides-supported",
            ],
        ),
        (["printer-description"], ["printer-name", "printer-state"]),
        (["printer-state", "copies-default"], ["copies-default", "printer-state"]),
    ],
)
def test_printer_requested_attributes(requested: list[str], selected: list[str]) -> None:
    names, unknown = ipp.select_attributes(
        requested, PRINTER, target="printer", explicit_only={"media-col-database"}
    )
    assert names == selected and unknown == []


def test_job_requested_attributes_and_unknown_names() -> None:
    job = ["job-id", "job-state", "copies", "media-col", "job-name", "job-uri"]
    assert ipp.select_attributes(["job-template"], job, target="job") == (
        ["copies", "media-col"],
        [],
    )
    assert ipp.select_attributes(["job-description"], job, target="job")[0] == [
        "job-id",
        "job-state",
        "job-name",
        "job-uri",
    ]
    assert ipp.select_attributes(["job-id", "frobnicate", "frobnicate"], job, target="job") == (
        ["job-id"],
        ["frobnicate"],
    )
    # 'printer-description' is no group of a job: an unknown name there
    assert ipp.select_attributes(["printer-description"], job, target="job") == (
        [],
        ["printer-description"],
    )


def test_requested_names_default() -> None:
    assert ipp.requested_names(request()) == ["all"]
    assert ipp.requested_names(request(), default=("job-id", "job-uri")) == ["job-id", "job-uri"]
    asked = request(
        charset(),
        language(),
        Attribute("printer-uri", ValueTag.URI, URI),
        Attribute(
            "requested-attributes", ValueTag.KEYWORD, ["printer-state", "media-col-database"]
        ),
    )
    assert ipp.requested_names(asked) == ["printer-state", "media-col-database"]


# -- responses --------------------------------------------------------------------------


def test_response_echoes_the_request_and_orders_its_groups() -> None:
    asked = request(request_id=77, version=(1, 1))
    job = Group(GroupTag.JOB, [Attribute("job-state", ValueTag.ENUM, JobState.PENDING_HELD)])
    answer = ipp.response(
        asked,
        Status.SUCCESSFUL_OK_IGNORED_OR_SUBSTITUTED_ATTRIBUTES,
        [job],
        unsupported_attributes=[ipp.unsupported("job-frobnication")],
        status_message="é" * 200,
    )
    assert (answer.request_id, answer.version) == (77, (1, 1))
    assert answer.status is Status.SUCCESSFUL_OK_IGNORED_OR_SUBSTITUTED_ATTRIBUTES
    assert [g.tag for g in answer.groups] == [
        GroupTag.OPERATION,
        GroupTag.UNSUPPORTED,
        GroupTag.JOB,
    ]
    names = [a.name for a in answer.groups[0]]
    assert names == ["attributes-charset", "attributes-natural-language", "status-message"]
    message = answer.value(GroupTag.OPERATION, "status-message")
    assert message == "é" * 127  # text(255): cut at a character boundary
    assert answer.get(GroupTag.UNSUPPORTED, "job-frobnication").value is OutOfBand.UNSUPPORTED
    assert ipp.decode(ipp.encode(answer)) == answer


def test_unsupported_entries() -> None:
    sides = Attribute("sides", ValueTag.KEYWORD, ["one-sided", "three-sided"])
    assert ipp.unsupported(sides, ["three-sided"]) == Attribute(
        "sides", ValueTag.KEYWORD, "three-sided"
    )
    assert ipp.unsupported(sides) == sides
    assert ipp.unsupported(sides, ["x"]).out_of_band


def test_decoder_errors_are_answered_with_the_request_id() -> None:
    wire = bytes.fromhex("0200000b0000002a") + b"\x01\x21\x00\x01a\x00\x03\x00\x00\x00\x03"
    with pytest.raises(IPPError) as caught:
        ipp.decode(wire)
    answer = ipp.decode(ipp.encode(ipp.error_response(caught.value)))
    assert answer.request_id == 42
    assert answer.status is Status.CLIENT_ERROR_BAD_REQUEST
    assert "integer or enum of 3 octets" in answer.value(GroupTag.OPERATION, "status-message")


# -- model -----------------------------------------------------------------------------


def test_model_names() -> None:
    assert Operation.GET_PRINTER_ATTRIBUTES.keyword == "Get-Printer-Attributes"
    assert Operation.CUPS_GET_PRINTERS.keyword == "CUPS-Get-Printers"
    assert Operation.PRINT_URI.keyword == "Print-URI"
    assert Operation.CUPS_GET_PPDS.keyword == "CUPS-Get-PPDs"
    assert Status.CLIENT_ERROR_REQUEST_ENTITY_TOO_LARGE == 0x0408
    assert (
        Status.CLIENT_ERROR_REQUEST_VALUE_TOO_LONG.keyword == "client-error-request-value-too-long"
    )
    assert Status.SUCCESSFUL_OK_CONFLICTING_ATTRIBUTES.successful
    assert not Status.SERVER_ERROR_BUSY.successful
    assert JobState.ABORTED.terminal and not JobState.PROCESSING_STOPPED.terminal
    assert is_printer_job_template("media-col-database")
    assert is_printer_job_template("print-color-mode-supported")
    assert not is_printer_job_template("printer-state")
    assert not is_printer_job_template("copies")  # a Job's name, not a Printer's
    assert ipp.Range(1, 9).__contains__(9) and 10 not in ipp.Range(1, 9)


RFC_8011_STATUSES = {
    Status.CLIENT_ERROR_BAD_REQUEST,
    Status.CLIENT_ERROR_CHARSET_NOT_SUPPORTED,
    Status.SERVER_ERROR_VERSION_NOT_SUPPORTED,
    Status.SERVER_ERROR_OPERATION_NOT_SUPPORTED,
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REQUESTS)
def test_any_request_is_accepted_or_refused_with_an_rfc_8011_status(message: Message) -> None:
    served = {Operation.PRINT_JOB, Operation.GET_PRINTER_ATTRIBUTES, Operation.CANCEL_JOB}
    wire = ipp.encode(message)
    decoded = ipp.decode(wire)
    try:
        checked = ipp.check_request(decoded, operations=served)
    except IPPError as error:
        assert error.status in RFC_8011_STATUSES
        answer = ipp.decode(ipp.encode(ipp.error_response(error)))
        assert answer.request_id == message.request_id
        return
    assert checked.operation in served
    assert checked.charset in {"utf-8", "us-ascii"}
    assert decoded.version in {(1, 1), (2, 0), (2, 1), (2, 2)}
    assert checked.printer_uri or checked.job_uri


def test_request_builds_what_check_request_accepts() -> None:
    job = Group(GroupTag.JOB, [Attribute("copies", ValueTag.INTEGER, 2)])
    built = ipp.request(
        Operation.PRINT_JOB,
        printer_uri=URI,
        requesting_user_name="alice",
        attributes=[Attribute("document-format", ValueTag.MIME_MEDIA_TYPE, "application/pdf")],
        groups=[job],
        request_id=9,
        data=b"%PDF-1.7",
    )
    decoded = ipp.decode(ipp.encode(built))
    assert decoded == built
    checked = ipp.check_request(decoded, operations={Operation.PRINT_JOB})
    assert (checked.printer_uri, checked.requesting_user_name) == (URI, "alice")
    assert decoded.value(GroupTag.JOB, "copies") == 2
    cancel = ipp.check_request(ipp.request(Operation.CANCEL_JOB, job_uri=f"{URI}/3"))
    assert cancel.job_uri == f"{URI}/3"
    by_id = ipp.check_request(ipp.request(Operation.CANCEL_JOB, printer_uri=URI, job_id=3))
    assert by_id.job_id == 3
