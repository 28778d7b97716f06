"""The Kubernetes runtime: the lab's stack as the deploy/k8s/ manifests on a cluster.

`runtime.K8sRuntime` implements the lab's contract (lab/runtimes/contract.py) by running
`kubectl` as a program: it renders the kustomization, sets the deployment on the
rendered objects as the overlays do (lab/k8s/objects.py), applies them and waits for the
rollout. Validated statically only: no cluster runs in the lab's tests (deploy/k8s/README.md).
"""
