"""The virtual printer/MFP agent (seed 003, printer side PRT001; seed 004 card login).

`raster` is its engine: a downloaded page (JPEG) becomes one 1-bit plane per
colorant plus a preview. The device imports `core` and no other service; it
talks to `printing` and `auth` over HTTP only.
"""
