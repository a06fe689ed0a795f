"""The distributed run, described once (`topology`), rendered into nginx, HAProxy and
systemd files (`render`), and started on loopback (`run`, `printcloud cluster`).

It composes processes; it imports `core` and nothing of a service's internals
(each service runs as `printcloud serve --service NAME` in its own process).
"""
