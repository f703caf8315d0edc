#!/usr/bin/env bash
# Install what ofrace, its lab and its tests need on Debian 12, as root.
# Safe to run twice: apt and pip only act on what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# openvswitch-switch / ovn-central / ovn-host: the real OVS and OVN the lab runs;
# ovn-ic / ovn-ic-db: ovn-ic and the IC-NB/IC-SB schemas of the kind-ic lab;
# openssh-server: one sshd per lab chassis; iproute2: namespaces and veths;
# python3-venv: the virtualenv below on a stock Debian python3; sosreport: the real
# sos report integration/test_import.py runs on the lab's chassis (unit tests use
# recorded archives and need no sos); chromium: the headless browser
# tests/test_trace_html_browser.py opens the trace pages in (driven over its DevTools
# pipe from the standard library: no chromedriver, no Python or npm package).
packages=(openvswitch-switch ovn-central ovn-host ovn-ic ovn-ic-db openssh-server
          openssh-client iproute2 python3-venv python3-pip sosreport chromium)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]' tox
echo "setup: ready (.venv/bin/ofrace)"
