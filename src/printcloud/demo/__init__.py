"""`printcloud demo`: the embedded stack, set up and walked through over real HTTP.

It starts every service in this process on loopback, creates demo tenants,
users and a device client, and runs the platform's flows one step at a time,
showing what each step answered:

- seed 001: a device's client-credentials token carrying its local user;
  introspection answers tenant and local user; `/api/me` acts as the client
  with the tenant's local authentication cooperation mode off and as the
  local user with it on (`local_user.py`);
- seed 002: an admin consents on a device's client for everyone in the
  tenant; a second user of that tenant is not asked; a user of another
  tenant is (`consent.py`);
- seed 000, FIG. 11: a logged-in browser's authentication session (AUTH_ID)
  exchanged for an access and a refresh token of the print service
  (`session.py`);
- seed 003: alice prints a multi-page PDF (made here) to a color and a mono
  virtual printer through the load-balanced conversion workers, with progress
  per step, the worker that served it, and where the previews are; a third
  job runs out of paper (`printing.py`);
- issue 15: a third printer driven by the virtual printer in IPP INFRA mode (PWG
  5100.18): it registers as the printer's output device, waits on Get-Notifications,
  fetches alice's PDF and reports it printed, so the demo prints through both device
  protocols, the JSON device API and INFRA (`infra.py`);
- issue 14: an IPP Everywhere queue on the color printer; with CUPS installed, a
  private cupsd adds it (`lpadmin -m everywhere`) and CUPS's own `lp` prints to it,
  followed to the virtual printer and CUPS's completed list (`ipp.py`);
- seed 004: a new ID card is tapped at a printer, registered with directory
  credentials, tapped again to release a held job; past the retention period
  the binding is gone (`cards.py`);
- seed 000: two tenants' invoices loaded into the CRM, keys issued and
  registered, both tokens obtained through the real flows, a scheduled job that
  fires during the demo, a revoked token refreshed on the way, the invoices
  printed (`batch.py`).

The demo's data lives in `<data_dir>/demo/` and is recreated on every run.
`walk.py` starts the stack, sets up, runs the stories in this order and prints
what was checked (`report.py`); `browser.py` fills in the login and consent
forms as a person would.
"""

from printcloud.demo.walk import run_demo

__all__ = ["run_demo"]
