#!/usr/bin/env bash
# Set up, then run every test: lint, the fast unit tests, and the integration
# tests against a real OVN lab (needs root: network namespaces, sshd).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/tox run -e lint,unit,integration
