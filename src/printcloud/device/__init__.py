"""The virtual printer/MFP agent (seed 003, printer side PRT001; seed 004 card login).

`agent` is the loop (poll or push → print each job), `journal` the per-job record
that makes pages exactly-once, `push` the listener for print requests, `api` its
calls to the print service's device API and to the issuer, `raster` its engine (a
downloaded page, JPEG, becomes one 1-bit plane per colorant plus a preview),
`cards` / `panel` / `console` the card reader and what a person sees. Like every
service it imports `core` and reaches `printing` and `auth` over HTTP only, through
their typed clients (`printing.client`, `auth.client`).
"""
