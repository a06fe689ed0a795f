"""Accounting, quotas and refunds (issue 18), inside the print service.

- `prices`: a tenant's price list and settings (none: accounting is off for it);
- `ledger`: accounts and the append-only, double-entry ledger; allowances;
- `charging`: reserve at intake, charge what printed (exactly once), release, refund;
- `events`: the account events (the "low balance" call point);
- `reports`: usage for a period, the pages printed of docgen's nightly runs, CSV, SVG and
  the data of the PDF docgen typesets.

It imports the print service's `models` only; `service`, `intake` and `pipeline` call
it (import-linter's layers for `printcloud.printing`).
"""
