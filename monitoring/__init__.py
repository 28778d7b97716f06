"""The lab's own tooling: native runtime, load generation helpers, experiments, reports."""
