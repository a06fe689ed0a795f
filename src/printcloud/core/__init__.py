"""Shared foundation of every printcloud service. It imports no service."""
