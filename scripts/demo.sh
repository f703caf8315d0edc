#!/usr/bin/env bash
# Set up, bring up the embedded kind lab (the seed's 3-node ovn-kubernetes
# cluster, real OVS/OVN), collect it over SSH, and trace the seed's NodePort
# packet through the real OpenFlow tables, checked against ofproto/trace.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
ofrace=.venv/bin/ofrace
seed_flow='in_port=1,tcp,dl_src=02:42:7a:79:82:ca,dl_dst=02:42:ac:12:00:04,nw_src=172.18.0.1,nw_dst=172.18.0.4,nw_ttl=64,tcp_src=12345,tcp_dst=30007,tcp_flags=0x002'

seed_expr='inport == "breth0_ovn-worker" && eth.src == 02:42:7a:79:82:ca && eth.dst == 02:42:ac:12:00:04 && ip4.src == 172.18.0.1 && ip4.dst == 172.18.0.4 && ip.ttl == 64 && tcp.src == 12345 && tcp.dst == 30007 && tcp.flags == 2'

echo "== ofrace lab up --topology kind --warm   (real OVN; real traffic resolves the neighbours)"
$ofrace lab up --topology kind --warm
echo "== ofrace collect --lab -o kind.ofr   (every chassis over SSH, plus the SB and NB)"
$ofrace collect --lab -o kind.ofr
echo "== ofrace trace --reply: the seed's NodePort SYN, through every chassis, and its answer"
$ofrace trace --snapshot kind.ofr --reply "$seed_expr"
echo "== ofrace trace --conversation --summary: the whole connection, SYN to last ACK, on one conntrack"
$ofrace trace --snapshot kind.ofr --conversation --summary "$seed_expr"
echo "== ofrace compare: the same SYN on ovn-worker's breth0, ofrace vs the node's ofproto/trace"
$ofrace compare --lab --node ovn-worker --bridge breth0 "$seed_flow"
echo "== ofrace compare --all: every generated packet on every chassis"
$ofrace compare --lab --all
echo
echo "The lab stays up: 'ofrace lab status' shows how to reach each chassis,"
echo "'ofrace lab down' stops it."
