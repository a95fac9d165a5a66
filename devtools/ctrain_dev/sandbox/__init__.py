"""The local sandbox behind `ctrain dev`: a real Kubernetes control plane, a node (the node
agent running pods as local processes, or a real kubelet and containerd in a container)
and an S3 API on this machine. For the demo and the tests only."""
