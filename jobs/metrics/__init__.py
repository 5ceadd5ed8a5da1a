"""Prometheus metrics: ``/metrics`` of the daemon and the textfile collector of one-shot runs."""
