"""The CRM: service provider server B of seed 000 (US 9,185,102).

Tenants' business data (typed record sets, CSV import, a query API for docgen),
scheduled batch-print jobs (FIG. 6–7) and the docgen secret-key registration
(FIG. 9, S1407–S1412), for the tenants of idp-b, the CRM's own authorization server.

Inside: `routes` (the API) and `pages` are thin callers of `service` (`records`,
`csv_import`, `jobs`, `docgen_link`), with their typed dependencies in `deps`;
`schedules` fires the batch jobs.

This package imports `printcloud.core` and, of the other services, only
`printcloud.auth.sign_in` (its pages sign users in at idp-b) and
`printcloud.docgen.client` (its batch jobs call docgen).
"""
