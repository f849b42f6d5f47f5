#!/bin/sh
# Removes what kube-proxy's iptables mode leaves on a node once kube-ipvs has taken it over
# (deploy/MIGRATING.md, "From kube-proxy in iptables mode"). Run it in the node's network namespace,
# e.g. through the node's kube-ipvs pod (host network, same iptables, /run/xtables.lock mounted):
#
#   kubectl -n kube-system exec -i POD -- sh -s < deploy/cleanup-iptables-mode.sh
#   kubectl -n kube-system exec -i POD -- env DRY_RUN=1 sh -s < deploy/cleanup-iptables-mode.sh
#
# What goes, in both iptables back ends (nft and legacy) and both families:
#   - the jumps from INPUT/FORWARD/OUTPUT into filter KUBE-SERVICES, KUBE-EXTERNAL-SERVICES and
#     KUBE-NODEPORTS. These matter: they REJECT/DROP traffic to Services that had no endpoints when
#     the node was migrated, even after endpoints appear. Run this right after the node's kube-ipvs
#     pod is ready.
#   - the per-Service chains (nat KUBE-SVC-*, KUBE-SVL-*, KUBE-SEP-*, KUBE-EXT-*, KUBE-FW-*), nat
#     KUBE-NODEPORTS, the filter chains above and the KUBE-PROXY-CANARY chains.
# What stays: the chains both modes share, which kube-ipvs has already rewritten (nat KUBE-SERVICES,
# KUBE-POSTROUTING, KUBE-MARK-MASQ; filter KUBE-FORWARD, KUBE-PROXY-FIREWALL), kube-ipvs's own, and
# kubelet's (KUBE-FIREWALL, KUBE-KUBELET-CANARY). Each table changes in one iptables-restore
# transaction (fast with tens of thousands of chains); running it again changes nothing.
set -eu
set -f # the patterns below are regular expressions, never globs

NAT='KUBE-(SVC|SVL|SEP|EXT|FW)-[A-Z0-9]+|KUBE-NODEPORTS|KUBE-PROXY-CANARY'
FILTER='KUBE-SERVICES|KUBE-EXTERNAL-SERVICES|KUBE-NODEPORTS|KUBE-PROXY-CANARY'
MANGLE='KUBE-PROXY-CANARY'

# The restore input removing `table`'s chains matching `re` (and, in filter, the jumps into them).
transaction() {
    ipt=$1 table=$2 re=$3
    chains=$("$ipt-save" -t "$table" 2>/dev/null | grep -oE "^:($re) " | tr -d ': ' || true)
    [ -n "$chains" ] || return 0
    echo "*$table"
    # Declaring an existing chain under --noflush flushes it; then the jumps into it go, then it.
    for c in $chains; do echo ":$c - [0:0]"; done
    if [ "$table" = filter ]; then
        "$ipt-save" -t filter | grep -E "^-A (INPUT|FORWARD|OUTPUT) .*-j ($FILTER)\$" |
            sed 's/^-A /-D /' || true
    fi
    for c in $chains; do echo "-X $c"; done
    echo COMMIT
}

for ipt in iptables-nft ip6tables-nft iptables-legacy ip6tables-legacy; do
    command -v "$ipt-save" >/dev/null 2>&1 || continue
    for spec in "nat $NAT" "filter $FILTER" "mangle $MANGLE"; do
        set -- $spec
        input=$(transaction "$ipt" "$1" "$2")
        [ -n "$input" ] || continue
        n=$(printf '%s\n' "$input" | grep -c '^-X ')
        if [ -n "${DRY_RUN:-}" ]; then
            echo "# $ipt -t $1: would delete $n chains"
            printf '%s\n' "$input"
        else
            printf '%s\n' "$input" | "$ipt-restore" -w --noflush
            echo "$ipt -t $1: deleted $n chains"
        fi
    done
done
