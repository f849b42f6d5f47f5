#!/bin/sh
# `cargo xtask demo`: kube-ipvs run --source file:examples/cluster.yaml programs a real kernel (in the
# lab), and the table it programs is the one `kube-ipvs plan` printed. Runs as root in a throwaway VM.
set -eu
BIN=${KUBE_IPVS_BIN:?path of the kube-ipvs binary}
cd "$(dirname "$0")/.."
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# node-a's addresses (from its Node object), on an interface of their own.
ip link add eth-node type dummy
ip addr add 192.168.1.10/24 dev eth-node
ip addr add fd00:1::10/64 dev eth-node nodad
ip link set eth-node up

step "kube-ipvs plan -f examples/cluster.yaml --node node-a (no kernel access)"
"$BIN" plan -f examples/cluster.yaml --node node-a --node-address 192.168.1.10,fd00:1::10

step "kube-ipvs run --source file:examples/cluster.yaml (in the background)"
"$BIN" run --source file:examples/cluster.yaml --hostname-override node-a \
    --healthz-bind-address 127.0.0.1:10256 --metrics-bind-address 127.0.0.1:10249 \
    > /tmp/agent.log 2>&1 &
AGENT=$!
# Wait for the first sync (IPVS, addresses, routes, ipsets, then the iptables rules) to finish.
for _ in $(seq 1 300); do
    if wget -q -O - http://127.0.0.1:10249/metrics 2>/dev/null \
        | grep -Eq '^kubeproxy_sync_proxy_rules_duration_seconds_count\{[^}]*\} [1-9]'; then break; fi
    sleep 0.5
done
wget -q -O - http://127.0.0.1:10256/healthz || true; echo

step "kube-ipvs list --services -f examples/cluster.yaml --node node-a"
"$BIN" list --services -f examples/cluster.yaml --node node-a

step "the kernel's table vs the plan's (ipvsadm -Ln layout, owners left out)"
"$BIN" plan -f examples/cluster.yaml --node node-a --node-address 192.168.1.10,fd00:1::10 --no-owners \
    | sed -n '/^IP Virtual Server/,/^$/p' | sed '/^$/d' > /tmp/plan.txt
ipvsadm -Ln > /tmp/kernel.txt
if diff -u /tmp/plan.txt /tmp/kernel.txt; then echo "identical: the agent programmed exactly the planned table"; else echo "DIFFERENT"; fi

step "local routes, dummy device, ipsets, iptables"
ip route show table local proto static   # one route per service CIDR (on lo)
ip -br addr show dev kube-ipvs0
ipset list -n | sort
iptables-save -t nat | grep -c KUBE | sed 's/^/nat rules mentioning KUBE: /' || true

step "metrics (excerpt)"
wget -q -O - http://127.0.0.1:10249/metrics | grep -E '^kubeproxy_sync_proxy_rules_(last_timestamp|duration_seconds_count)|^kube_ipvs_ops_total' | head -20 || true

kill -TERM $AGENT; wait $AGENT || true
step "agent log (last lines)"
tail -n 15 /tmp/agent.log
cmp -s /tmp/plan.txt /tmp/kernel.txt
