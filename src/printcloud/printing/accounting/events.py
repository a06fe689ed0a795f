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


def audited(
    *, tenant_id: str, actor: str, action: str, account: str, amount: int, reason: str
) -> None:
    """An administrator's money movement (top-up, adjustment, refund): the ledger row
    holds who, when and why; this line is the audit trail's copy in the logs."""
    log.info(
        "an administrator moved money",
        extra={
            "fields": {
                "audit": action,
                "tenant": tenant_id,
                "by": actor,
                "account": account,
                "amount": amount,
                "reason": reason[:200],
            }
        },
    )
