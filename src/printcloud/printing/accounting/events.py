"""Account events other systems follow (issue 18).

`low_balance` is the one call point for the "low balance" account event: charging
calls it, in the transaction that took the balance below the tenant's threshold. Today
it writes a log line; the webhooks (issue 18, their own branch) deliver it from here.
"""

from __future__ import annotations

from printcloud.core.logs import get_logger

log = get_logger("printing.accounting")


def low_balance(
    *, tenant_id: str, account_kind: str, account_name: str, balance: int, threshold: int
) -> None:
    """An account's balance fell below the tenant's `low_balance` threshold."""
    log.warning(
        "an account's balance is low",
        extra={
            "fields": {
                "event": "account.low_balance",
                "tenant": tenant_id,
                "account": f"{account_kind}:{account_name}",
                "balance": balance,
                "threshold": threshold,
            }
        },
    )
