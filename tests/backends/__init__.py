"""Backends: one conformance test for every registered backend, and each backend's own tests."""
