# Shared by scripts/demo and scripts/test: make (or reuse) .venv and install the host and the
# three team plugins into it. Needs only Python 3.11+ with pip and venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
VENV="${TASKER_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating virtual environment $VENV" >&2
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e "$ROOT${TASKER_EXTRAS:-}" \
  -e "$ROOT/plugins/payments" -e "$ROOT/plugins/customer_success" -e "$ROOT/plugins/inventory"
export PATH="$VENV/bin:$PATH"
