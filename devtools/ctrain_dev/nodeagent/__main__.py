"""`python -m ctrain_dev.nodeagent`: run the sandbox's node agent (started by `ctrain dev up`)."""

import argparse
import logging
from pathlib import Path

from ctrain_dev.nodeagent.agent import Agent, serve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node-name", required=True)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument(
        "--pod-network", required=True, type=int, help="N of the pod subnet 10.N.0.0/16"
    )
    parser.add_argument("--apiserver-port", required=True, type=int)
    parser.add_argument("--kubelet-port", required=True, type=int)
    parser.add_argument("--pki-dir", type=Path)
    parser.add_argument(
        "--run-as-pod-user",
        action="store_true",
        help="switch each container to its securityContext's uid/gid",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    agent = Agent(
        kubeconfig=args.kubeconfig,
        node_name=args.node_name,
        state_dir=args.state_dir,
        pod_network=args.pod_network,
        api_port=args.apiserver_port,
        kubelet_port=args.kubelet_port,
        run_as_pod_user=args.run_as_pod_user,
    )
    serve(agent)


if __name__ == "__main__":
    main()
