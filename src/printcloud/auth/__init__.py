"""The authorization server: OAuth 2.0, multi-tenant, several issuers per deployment.

Seeds: 001 (client-credentials tokens carrying the device's local user),
002 (tenant-wide consent on a device) and the token steps of 000 (FIG. 11–13).
"""
