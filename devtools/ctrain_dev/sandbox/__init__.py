"""The local sandbox behind `ctrain dev`: a real Kubernetes control plane, a real node (a
kubelet with containerd and kube-proxy in a container, running the checkout's image) and
an S3 API on this machine. For the demo and the tests only."""
