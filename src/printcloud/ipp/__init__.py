"""The IPP protocol as a library: RFC 8010 codec, RFC 8011 model, PWG raster / URF codecs.

One module per specification (STYLE.md): `pwg` (PWG 5102.4 raster), `urf` (Apple
raster). Like `core`, this package imports no service (an import-linter contract).
"""
