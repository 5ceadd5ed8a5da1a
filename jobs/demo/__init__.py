"""The end-to-end demo: the digits data, the simulated production app and its schedule.

A guest: production code never imports it (``tests/jobs/test_layout.py`` checks).
"""
