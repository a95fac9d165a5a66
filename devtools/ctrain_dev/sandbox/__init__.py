"""The local sandbox behind `ctrain dev`: a real Kubernetes control plane, a node agent and
an S3 API on this machine, without a container engine. For the demo and the tests only."""
