#!/usr/bin/env bash
# Set up, bring up the embedded kind lab (the seed's 3-node ovn-kubernetes
# cluster, real OVS/OVN), collect it over SSH, and trace the seed's NodePort
# packet through the real OpenFlow tables, checked against ofproto/trace.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
ofrace=.venv/bin/ofrace
seed_flow='in_port=1,tcp,dl_src=02:42:7a:79:82:ca,dl_dst=02:42:ac:12:00:04,nw_src=172.18.0.1,nw_dst=172.18.0.4,nw_ttl=64,tcp_src=12345,tcp_dst=30007'

echo "== ofrace lab up --topology kind"
$ofrace lab up --topology kind
echo "== ofrace collect --lab -o kind.ofr   (every chassis over SSH, plus the SB and NB)"
$ofrace collect --lab -o kind.ofr
echo "== ofrace compare: the seed's NodePort SYN on ovn-worker's breth0, ofrace vs ofproto/trace"
$ofrace compare --lab --node ovn-worker --bridge breth0 "$seed_flow"
echo "== ofrace compare --all: every generated packet on every chassis"
$ofrace compare --lab --all
echo
echo "The lab stays up: 'ofrace lab status' shows how to reach each chassis,"
echo "'ofrace lab down' stops it."
