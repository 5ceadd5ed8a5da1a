"""Exit codes of every command and job run, for cron, Airflow, Kubernetes and the daemon.

0 done, 1 error (including "already running"), 2 usage (typer's own), 3 drift with
``--fail-on-drift`` (or a retrain-worthy ``run check``).
"""

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_DRIFT = 3
