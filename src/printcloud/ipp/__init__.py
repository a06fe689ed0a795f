"""The IPP protocol as a library: RFC 8010 codec, RFC 8011 model, server-side helpers.

    from printcloud import ipp

    message = ipp.decode(body)                      # raises ipp.IPPError only
    request = ipp.check_request(message, operations={ipp.Operation.PRINT_JOB, ...})
    answer = ipp.response(message, ipp.Status.SUCCESSFUL_OK, [ipp.Group(ipp.GroupTag.JOB, [...])])
    body = ipp.encode(answer)

Modules: `model` (RFC 8011 enums and syntaxes), `message` (the message as objects),
`encoding` (RFC 8010 wire format, bounded decoding), `operations` (RFC 8011 §4.1
request checks, requested-attributes, responses), `pwg` (PWG 5102.4 raster) and
`urf` (Apple raster). This package imports no service.
"""

from printcloud.ipp.encoding import (
    DEFAULT_LIMITS,
    Limits,
    decode,
    decode_head,
    encode,
    encode_attribute,
    encode_message,
)
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
    Finishings,
    JobState,
    NameWithLanguage,
    Operation,
    OrientationRequested,
    OutOfBand,
    PrinterState,
    PrintQuality,
    Range,
    Resolution,
    ResolutionUnits,
    Status,
    TextWithLanguage,
)
from printcloud.ipp.operations import (
    Request,
    check_request,
    error_response,
    request,
    requested_names,
    response,
    select_attributes,
    unsupported,
)

__all__ = [
    "DEFAULT_LIMITS",
    "Attribute",
    "Collection",
    "Finishings",
    "Group",
    "GroupTag",
    "IPPError",
    "JobState",
    "Limits",
    "Message",
    "NameWithLanguage",
    "Operation",
    "OrientationRequested",
    "OutOfBand",
    "PrintQuality",
    "PrinterState",
    "Range",
    "Request",
    "Resolution",
    "ResolutionUnits",
    "Status",
    "TextWithLanguage",
    "ValueTag",
    "check_request",
    "decode",
    "decode_head",
    "encode",
    "encode_attribute",
    "encode_message",
    "error_response",
    "request",
    "requested_names",
    "response",
    "select_attributes",
    "unsupported",
]
