#!/usr/bin/env bash
# Prepare the Rasa virtual environment used by the Rasa backend's integration test and the
# benchmark: Rasa 3.6 needs Python 3.8-3.10, so it lives apart from the app's venv.
#
#   bot/understanding/rasa_env.sh            # creates .rasa-venv at the repository root
#   RAPPORT_RASA_VENV=/opt/rasa bot/understanding/rasa_env.sh
#
# Python is taken from $RASA_PYTHON, else pyenv's newest 3.10, else python3.10 on the PATH.
# Exits 0 with a message (and no venv) when no Python 3.10 exists: the test then skips, visibly.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${RAPPORT_RASA_VENV:-$repo/.rasa-venv}"
version="3.6.21"

if [[ -x "$venv/bin/rasa" ]] && "$venv/bin/python" -c "import rasa, sys; sys.exit(rasa.__version__ != '$version')" 2>/dev/null; then
  echo "rasa $version already installed in $venv"
  exit 0
fi

py="${RASA_PYTHON:-}"
if [[ -z "$py" ]] && command -v pyenv >/dev/null 2>&1; then
  root="$(pyenv root)"
  cand="$(ls -d "$root"/versions/3.10.* 2>/dev/null | sort -V | tail -1 || true)"
  [[ -n "$cand" && -x "$cand/bin/python" ]] && py="$cand/bin/python"
fi
if [[ -z "$py" ]] && command -v python3.10 >/dev/null 2>&1; then
  py="$(command -v python3.10)"
fi
if [[ -z "$py" ]]; then
  echo "no Python 3.10 found (set RASA_PYTHON); the Rasa backend test will be skipped" >&2
  exit 0
fi

echo "creating $venv with $py"
"$py" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip wheel
"$venv/bin/pip" install --quiet "rasa==$version"
"$venv/bin/rasa" --version
