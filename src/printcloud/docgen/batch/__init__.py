"""The batch flow (seed 000, FIG. 15B–16) as a durable workflow, `batch-<request_id>`.

One checkpointed step per seed step, each recorded on the request
(`service.advance_request`: state, seed step, detail):

- `identify` (S1515–S1516): the tenant's CRM and print token sets → `verifying`.
- `verify` (S1520–S1521): the print token introspected at idp-a; an invalid one
  is refreshed (S1607–S1611). Refused → `suspended` with the reason, before any
  data is fetched or document made (claim 3).
- `fetch` (S1517–S1518) → `fetching`: the records from the CRM with the CRM
  token; a 401 refreshes it through idp-b and retries once (S1601–S1605); a
  refused refresh or any other CRM error → `suspended` with the reason (S1606).
- `render` (S1519) → `rendering`: the records mapped to the form's data (below),
  one PDF per document, kept as blobs `docgen/<request>/doc-NNNN.pdf`, rendered on
  every core by the process's render threads (`rendering`).
- `verify` again (claim 2), then `send` (S1522) → `sending`: each document
  uploaded to the print service with the print token; its print job ID recorded.
- `complete` (S1525): `completed` once every document is handed over; the paper
  is not waited for (`print_job_states` asks the print service how the jobs go).

A user-initiated request (FIG. 19, `source` "user", S1901) runs the same steps
with the user's session instead of the tenant's stored tokens: no `identify`,
no refresh (a token refused → `suspended`, "your session has expired; sign in
again"); fetch (S1902) with the user's idp-b token, render (S1903), send (S1904)
with the user's idp-a token, so the print jobs are the user's. The two tokens
are sealed in the request's parameters (`_session`), read by each step, and
dropped when the request ends.

Tokens never enter a step's inputs or outputs (DBOS checkpoints them): each
step reads them from the sealed store. Records and documents travel between
steps as blob keys. Expected failures end the request `suspended` with their
reason; anything else, once a step's retries are spent, `failed` with it.

The request's parameters (the CRM's body, `parameters`):

    record_set: the CRM record set to query      filters?, order?, limit?: the query
    form: "invoice" | "statement" | a tenant form currency? (EUR), company?, tax_rate?
    (company: {name, address}; by default the tenant's display name as idp-a tells it)
    print: {printer_id, color?, copies?, duplex?} (or these four at the top level)

Mapping to the forms' data (the `forms` package's shapes), documented for the CRM admin:

- `invoice`: one invoice per record, from its fields `number`, `date`, `due`?,
  `customer_name`, `customer_address`? (lines separated by newlines),
  `customer_number`?, `currency`?, `tax_rate`?, and `lines`: a JSON list (as
  text) of `{description, quantity, unit_price, unit?}`.
- `statement`: one statement over all records, grouped by `customer_name` (or
  one group), each record a transaction: `date`, `description` (or `number`),
  `amount` (or `total`); the period runs from the first date to the last.

The modules: `session` (a user's sealed session, progress recorded on the request),
`steps` (load, identify, verify, fetch, render, complete, end), `mapping` (records →
the forms' data), `rendering` (the documents on the shared render threads), `sending`
(send, and the print jobs' states) and `flow` (the workflow, its start and adoption).
Step and workflow names are durable: keep them.
"""

from __future__ import annotations

from .flow import Suspend, adopt_orphans, run_batch, start, workflow_id
from .mapping import BATCH_FORMS, invoices_from, statement_from
from .sending import print_job_states, send
from .session import REQUESTER_KEY, SESSION_EXPIRED, SESSION_KEY, seal_session
from .steps import complete, end, fetch, identify, load, render, verify

__all__ = [
    "BATCH_FORMS",
    "REQUESTER_KEY",
    "SESSION_EXPIRED",
    "SESSION_KEY",
    "Suspend",
    "adopt_orphans",
    "complete",
    "end",
    "fetch",
    "identify",
    "invoices_from",
    "load",
    "print_job_states",
    "render",
    "run_batch",
    "seal_session",
    "send",
    "start",
    "statement_from",
    "verify",
    "workflow_id",
]
