"""What the service counts, for Prometheus (`/metrics`) and the status page: the metrics stated once, their
instruments, prometheus_client's multiprocess mode for `--workers`, and the merged figures the page shows."""
