"""Exit codes of every command and job run, for cron, Airflow, Kubernetes and the daemon.

0 done, 1 error (including "already running"), 2 usage (typer's own), 3 drift with
``--fail-on-drift`` (or a retrain-worthy ``run check``), 4 a source rejected (the ingest
circuit breaker tripped: nothing of the batch was kept, the watermark did not move), 5 a
blind window (no accepted rows of the champion to check, or mostly quarantined ones).
"""

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_DRIFT = 3
EXIT_REJECTED = 4
EXIT_BLIND = 5
