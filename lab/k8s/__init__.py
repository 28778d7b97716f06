"""The Kubernetes manifests' generated parts (deploy/k8s/), from the files the other
runtimes use: `python -m lab.k8s` writes them, `python -m lab.k8s --check` fails when
the committed ones drifted from their sources."""
