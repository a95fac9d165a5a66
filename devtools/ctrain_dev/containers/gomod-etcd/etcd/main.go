// Command etcd is upstream etcd's own main, at the version kubeadm deploys for the
// Kubernetes release of the kind node image.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
