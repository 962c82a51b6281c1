"""Integration-test control plane: upstream etcd, kube-apiserver and
kube-controller-manager built from Go modules (build.sh), started by pytest
(fixtures.py), with a local stand-in for kubelet (pod_runner.py) and KServe's
InferenceService CRD (kserve-crd.yaml, kserve.py). See docs/contributing.md.
"""
