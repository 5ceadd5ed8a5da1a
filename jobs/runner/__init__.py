"""Running jobs: the one entry every run goes through, the job-run history, the scheduler daemon."""
