"""The print service: server C, SVC001–SVC005 of seed 003 (JP 2013-61926).

`printing.convert` is the conversion library: a PDF becomes one JPEG per page
plus a metafile listing each page's URL (seed 003, FIG. 8, step S1308). The
HTTP services (intake, the job-acceptance orchestration, the conversion
workers, the converted-data store) build on it.

This package imports `printcloud.core`, and of the other services only `auth`'s
typed client (`printcloud.auth.client`: service tokens) and its sign-in router
(`printcloud.auth.sign_in`, mounted by the pages), as import-linter's independence
contract allows. Other services call it through `printing.client`.
"""
