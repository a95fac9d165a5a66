#!/usr/bin/env bash
# Create benchmarks/.venv-mlserver: MLServer, the baseline of the serving benchmark.
#
# MLServer lives in its own venv so it never enters ctrain's dependencies. Every version
# is pinned in mlserver-requirements.txt: uvloop<0.22 because MLServer 1.7.1 breaks with
# uvloop >= 0.22, and the same scikit-learn as ctrain so both serve the same fitted model.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${MLSERVER_VENV:-$here/../.venv-mlserver}"
python="${PYTHON:-python3.11}"

if [[ -x "$venv/bin/mlserver" ]]; then
  echo "MLServer venv already present: $venv"
  exit 0
fi

"$python" -m venv "$venv"
# mlserver-requirements.txt is `pip freeze` of a working venv (mlserver==1.7.1,
# mlserver-sklearn==1.7.1, uvloop==0.21.0, scikit-learn==1.9.1 and their dependencies).
"$venv/bin/pip" install --quiet -r "$here/mlserver-requirements.txt"
"$venv/bin/mlserver" --version
echo "MLServer venv ready: $venv"
