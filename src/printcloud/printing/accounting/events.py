"""Account events other systems follow (issue 18).

`low_balance` is the one call point for the "low balance" account event: charging
calls it, in the transaction that took the balance below the tenant's threshold. It
writes a log line and queues the `account.low_balance` webhook (docs/webhooks.md) in
that same transaction.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from printcloud.core.logs import get_logger
from printcloud.webhooks import emit

log = get_logger("printing.accounting")


def low_balance(
    db: Session,
    *,
    tenant_id: str,
    account_kind: str,
    account_name: str,
    balance: int,
    threshold: int,
    currency: str,
) -> None:
    """An account's balance fell below the tenant's `low_balance` threshold."""
    account = f"{account_kind}:{account_name}"
    emit(
        db,
        tenant_id=tenant_id,
        event_type="account.low_balance",
        data={
            "account_id": account,
            "kind": account_kind,
            "owner": account_name,
            "balance": balance,
            "threshold": threshold,
            "currency": currency,
        },
        ordering_key=f"account:{account}",
    )
    log.warning(
        "an account's balance is low",
        extra={
            "fields": {
                "event": "account.low_balance",
                "tenant": tenant_id,
                "account": account,
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
