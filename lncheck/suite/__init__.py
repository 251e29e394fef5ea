"""Suites for CI: TOML files of cases (``parse``), how they run (``run``), golden baselines
(``baseline``)."""
