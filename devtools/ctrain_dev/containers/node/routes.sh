#!/bin/sh
# The pod network of the project's kind node image: each node's pods get addresses from
# the node's podCIDR (point-to-point links, the CNI `ptp` plugin, as kind's own network
# does), and every node routes the other nodes' podCIDRs to their InternalIP. The nodes
# share one Docker network, so those routes are all it takes; nothing is encapsulated.
#
# Runs in a hostNetwork pod on every node; reads Nodes from the API every few seconds.
set -eu

TOKEN=/var/run/secrets/kubernetes.io/serviceaccount
API="https://${KUBERNETES_SERVICE_HOST}:${KUBERNETES_SERVICE_PORT}"
CONFIG=/etc/cni/net.d/10-ctrain.conflist

nodes() {
  curl --fail --silent --show-error --max-time 10 --cacert "$TOKEN/ca.crt" \
    --header "Authorization: Bearer $(cat "$TOKEN/token")" "$API/api/v1/nodes"
}

write_config() {
  # $1: this node's podCIDR. Written only when it changes, and atomically (rename).
  wanted=$(jq -n --arg subnet "$1" --arg mtu "$MTU" '{
    cniVersion: "0.4.0",
    name: "ctrain",
    plugins: [
      {type: "ptp", mtu: ($mtu | tonumber), ipMasq: false,
       ipam: {type: "host-local", ranges: [[{subnet: $subnet}]],
              routes: [{dst: "0.0.0.0/0"}]}},
      {type: "portmap", capabilities: {portMappings: true}}
    ]}')
  if [ ! -f "$CONFIG" ] || [ "$(cat "$CONFIG")" != "$wanted" ]; then
    printf '%s' "$wanted" > "$CONFIG.tmp"
    mv "$CONFIG.tmp" "$CONFIG"
    echo "pod network of $NODE_NAME: $1"
  fi
}

MTU=$(cat /sys/class/net/eth0/mtu)
while true; do
  if listing=$(nodes); then
    own=$(printf '%s' "$listing" | jq -r --arg name "$NODE_NAME" \
      '.items[] | select(.metadata.name == $name) | .spec.podCIDR // empty')
    if [ -n "$own" ]; then
      write_config "$own"
    fi
    printf '%s' "$listing" | jq -r --arg name "$NODE_NAME" '
      .items[] | select(.metadata.name != $name) | select(.spec.podCIDR != null)
      | [.spec.podCIDR, ([.status.addresses[] | select(.type == "InternalIP")
                          | .address | select(test("^[0-9.]+$"))] | first)]
      | select(.[1] != null) | join(" ")' |
    while read -r subnet via; do
      if ! ip route show "$subnet" | grep -q "via $via "; then
        echo "route to $subnet via $via"
      fi
      ip route replace "$subnet" via "$via"
    done
  fi
  sleep 5
done
