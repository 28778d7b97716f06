"""What monitors the stack from the lab's side: a Prometheus HTTP API client (prom.py)
and the Pushgateway groups of load-generator runs (pushgateway.py)."""
