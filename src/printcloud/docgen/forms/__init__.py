"""Forms: Typst templates fed business records as JSON, rendered to PDF (seed 000, S1519).

A form is a Typst template. Its data arrives as one JSON string in
`sys.inputs.data` (the template reads it with `json(bytes(sys.inputs.data))`),
so nothing in the records is ever parsed as Typst markup. Two forms are built
in, `invoice` and `statement` (sources in `docgen/forms/*.typ`); tenants may
upload their own, checked by `validate_form`.

Data shapes (dates are ISO `YYYY-MM-DD` strings or `date` objects; numbers
are ints, floats, decimal strings or `Decimal`; money is computed here with
`Decimal`, rounded half up to the currency's minor unit, and reaches the
template as decimal strings):

    invoice:
      company:   {name, address: [line] | "l1\\nl2", email?, phone?, website?,
                  vat_id?, registration?, bank?: {name?, iban?, bic?}}
      customer:  {name, address?, number?, vat_id?, email?}
      invoice:   {number, date, due?, reference?}
      lines:     [{description, quantity, unit_price, unit?}]   (at most 10,000)
      currency:  ISO 4217 code, e.g. "EUR"
      tax_rate?: 0.1 (0 to 1; default 0)        payment_terms?, notes?: text
      The template also gets, per line, `amount` = round(quantity x unit_price);
      `totals` = {subtotal: sum of amounts, tax: round(subtotal x tax_rate),
      total: subtotal + tax}; `tax_percent`; `currency_digits`.

    statement (a customer statement / receivables report for a period):
      company:   as above
      period:    {from, to}
      currency:  ISO 4217 code                  title?, generated? (date)
      customers: [{name, number?, address?, opening_balance? (default 0),
                   transactions: [{date, description, amount, reference?}]}]
                 (amount > 0 is a charge, < 0 a payment; at most 20,000 in all)
      The template also gets, per transaction, `charge`, `payment` and the
      running `balance`; per customer `totals` = {charges, payments, closing};
      and `summary` = {opening, charges, payments, closing, customers,
      transactions}.

    both, optional: lang ("en"), labels ({key: text} to translate the
    captions), number_format ({group: ",", decimal: "."}), date_format (a
    Typst datetime format).

Rendering reuses Typst compilers (a small pool per form, `FormRenderer`):
fonts are loaded once and Typst's memoization carries over between documents.
Only the fonts Typst embeds are used (system fonts are ignored), so a form
renders the same on every machine, and a form asking for another font is
refused when uploaded.

Sandbox: the compiler's project root is an empty private directory, so
`read()`, `image()`, `json()`… of any path find nothing (paths cannot leave
the root). A tenant's form is compiled only in child processes with a CPU
budget, an address-space limit, a wall-clock deadline, empty package folders
and no route to the package registry (`sandbox.py`): the upload's trial
compile and every document of the batch flow (`render_tenant_form`). A
package import is refused from the compiler's own error, which names it, not
from the source text. Built-in forms render in process (`FormRenderer`).

The modules: `model` (`Form`, `FormError`, limits), `data` (the built-in forms'
data checks and money), `builtin` (the built-in forms and sample data),
`compiler` (compilers in the empty root, errors), `render` (PDFs) and
`validation` (uploaded forms). Callers use the names through this package.
"""

from __future__ import annotations

from .builtin import builtin_form, sample_invoice, sample_statement
from .data import MAX_INVOICE_LINES, MAX_STATEMENT_ROWS
from .model import BUILTIN_FORMS, MAX_DATA_BYTES, MAX_TEMPLATE_BYTES, Form, FormError
from .render import FormRenderer, render, render_tenant_form
from .validation import VALIDATE_MEMORY, VALIDATE_TIMEOUT, Trial, trial_form, validate_form

__all__ = [
    "BUILTIN_FORMS",
    "MAX_DATA_BYTES",
    "MAX_INVOICE_LINES",
    "MAX_STATEMENT_ROWS",
    "MAX_TEMPLATE_BYTES",
    "VALIDATE_MEMORY",
    "VALIDATE_TIMEOUT",
    "Form",
    "FormError",
    "FormRenderer",
    "Trial",
    "builtin_form",
    "render",
    "render_tenant_form",
    "sample_invoice",
    "sample_statement",
    "trial_form",
    "validate_form",
]
