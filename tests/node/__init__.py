"""A real node for the test bed: containerd + runc + CNI, kubelet, kube-proxy, kube-scheduler.

See tests/node/README.md.
"""
