"""Helpers the tests share: real peers they start on loopback, nothing mocked."""
