"""The error tree of printcloud. Each error carries its HTTP status and wire code.

    PrintcloudError                  500 server_error
    ├── InvalidRequest               400 invalid_request   (names the field)
    │   └── NotSupported             422 not_supported     (a value the printer cannot do)
    ├── Unauthorized                 401 invalid_token
    ├── PaymentRequired              402 payment_required  (names the balance and the cost)
    ├── Forbidden                    403 access_denied
    │   └── InsufficientScope        403 insufficient_scope
    ├── NotFound                     404 not_found
    ├── Conflict                     409 conflict
    ├── PayloadTooLarge              413 payload_too_large
    ├── UpgradeRequired              426 upgrade_required  (plain HTTP where TLS is due)
    ├── RateLimited                  429 rate_limited      (carries retry_after)
    └── Unavailable                  503 temporarily_unavailable

One handler (`core.web.install_error_handlers`) turns them into
`{"error": code, "error_description": text}` with the status. Third-party
errors are re-raised as one of these at the boundary, `raise ... from exc`.
"""

from __future__ import annotations


class PrintcloudError(Exception):
    status_code = 500
    error = "server_error"

    def __init__(self, description: str = "", *, field: str | None = None) -> None:
        super().__init__(description or self.error)
        self.description = description or self.error
        self.field = field

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"error": self.error, "error_description": self.description}
        if self.field:
            body["field"] = self.field
        return body

    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequest(PrintcloudError):
    status_code = 400
    error = "invalid_request"


class NotSupported(InvalidRequest):
    """Well-formed, but the target cannot do it (a printer's capabilities): names the field."""

    status_code = 422
    error = "not_supported"


class Unauthorized(PrintcloudError):
    status_code = 401
    error = "invalid_token"

    def headers(self) -> dict[str, str]:
        # A header is Latin-1 and a quoted string: keep the description printable ASCII.
        text = "".join(
            c if 32 <= ord(c) < 127 and c not in '"\\' else "?" for c in self.description
        )
        value = f'Bearer error="{self.error}", error_description="{text}"'
        return {"WWW-Authenticate": value}


class PaymentRequired(PrintcloudError):
    """The job costs more than its owner's accounts can pay (issue 18, accounting)."""

    status_code = 402
    error = "payment_required"


class Forbidden(PrintcloudError):
    status_code = 403
    error = "access_denied"


class InsufficientScope(Forbidden):
    error = "insufficient_scope"


class NotFound(PrintcloudError):
    status_code = 404
    error = "not_found"


class Conflict(PrintcloudError):
    status_code = 409
    error = "conflict"


class PayloadTooLarge(PrintcloudError):
    status_code = 413
    error = "payload_too_large"


class UpgradeRequired(PrintcloudError):
    """TLS is required (RFC 2817 §4.2, RFC 9110 §15.5.22): the client must come back
    over https / ipps."""

    status_code = 426
    error = "upgrade_required"

    def headers(self) -> dict[str, str]:
        return {"Upgrade": "TLS/1.2, HTTP/1.1", "Connection": "Upgrade"}


class RateLimited(PrintcloudError):
    status_code = 429
    error = "rate_limited"

    def __init__(self, description: str = "", *, retry_after: int = 60) -> None:
        super().__init__(description or "too many attempts; try again later")
        self.retry_after = max(1, int(retry_after))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Unavailable(PrintcloudError):
    status_code = 503
    error = "temporarily_unavailable"
