#!/usr/bin/env bash
# Installs the external tools some tests drive, once: promtool (the PrometheusRule tests)
# and Chromium (the report is rendered in a real browser). Idempotent: does nothing when
# both are on PATH. It installs only through Debian's apt as root; elsewhere it says what
# is missing and exits 0, and the tests that need the tool skip, naming it.
set -euo pipefail

declare -A package_of=([promtool]=prometheus [chromium]=chromium)
missing=()
for tool in promtool chromium; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("${package_of[$tool]}")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-tools: not installing ${missing[*]} (needs root and apt-get);" \
        "the tests that need them will skip" >&2
    exit 0
fi
echo "ensure-tools: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
# The package lists may be stale or absent on a fresh machine.
apt-get update -qq
# policy-rc.d 101: the prometheus package must not start a server here, only ship promtool.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
fi
status=0
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi
exit "$status"
