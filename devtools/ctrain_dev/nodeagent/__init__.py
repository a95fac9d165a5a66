"""A node agent for the sandbox and the tests: a stand-in for a container runtime.

It is not a product feature and not a kubelet. It registers one Node (capacity, a
heartbeat Lease, a Ready condition) and runs the pods the scheduler binds to it as local
processes: the image is ignored, while everything an operator relies on is honoured
(init containers, command/args, env with secret/configMap/fieldRef sources, volumes
mounted at their mountPath in a private mount namespace per pod, a ServiceAccount token
from the TokenRequest API, the in-cluster environment, a distinct 127.x.y.z pod IP,
probes, restart policies, exit codes, termination messages, graceful deletion and a log
file per container). Users with Docker run real clusters with kind instead.
"""
