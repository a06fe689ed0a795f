"""Subscription template groups of a Create-*-Subscriptions request (RFC 3995 §11.1),
read the same way for a queue's job subscriptions and an Infrastructure Printer's
printer subscriptions: pull by `ippget` only, no push (`notify-recipient-uri`), the
events asked for that the caller knows (its defaults when none are asked)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence

from printcloud.ipp.message import Attribute, Group, GroupTag, ValueTag
from printcloud.ipp.model import Status

IPPGET = (ValueTag.KEYWORD, "ippget")

#: Makes one subscription for `events` as its template asks; answers the attributes
#: of the subscription made (notify-subscription-id, ...) or raises the call's failure.
Subscribe = Callable[[list[str], Group], Awaitable[list[Attribute]]]


async def subscription_groups(
    templates: Sequence[Group],
    *,
    known: Collection[str],
    default: Sequence[str],
    subscribe: Subscribe,
) -> tuple[list[Group], int]:
    """One subscription group per template, in order: what `subscribe` made, or the
    template's `notify-status-code`; and how many were made."""
    groups: list[Group] = []
    made = 0
    for template in templates:
        out = Group(GroupTag.SUBSCRIPTION)
        method = template.get("notify-pull-method")
        asked = template.get("notify-events")
        events = (
            [str(e) for e in asked.values if e in known] if asked is not None else list(default)
        )
        if template.get("notify-recipient-uri") is not None:
            code = Status.CLIENT_ERROR_URI_SCHEME_NOT_SUPPORTED  # no push notifications
        elif not events or method is None or (method.tag, method.value) != IPPGET:
            code = Status.CLIENT_ERROR_ATTRIBUTES_OR_VALUES_NOT_SUPPORTED
        else:
            for attribute in await subscribe(events, template):
                out.add(attribute)
            groups.append(out)
            made += 1
            continue
        out.add(Attribute("notify-status-code", ValueTag.ENUM, int(code)))
        groups.append(out)
    return groups, made
