"""Page imaging shared by the conversion tier and the device (`halftone.py`)."""
