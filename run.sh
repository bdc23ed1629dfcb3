#!/usr/bin/env bash
# One entry point for set-up and the two everyday jobs:
#   bash run.sh demo   create .venv if needed, then run the whole pipeline at the demo's size
#                      (config/demo.yaml on config/config.yaml; synthetic data unless a
#                      data_dir is named)
#   bash run.sh test   create .venv if needed, then lint, build the docs site strictly
#                      (mkdocs.yml: a broken link or missing page fails) and run the test suite
# Environment: ECG2ABP_TORCH overrides the torch requirement (default torch==2.13.0);
# ECG2ABP_PYTHON picks the interpreter (default: the newest python3.x ≥ 3.11 found).
set -euo pipefail
cd "$(dirname "$0")"

find_python() {
  for candidate in ${ECG2ABP_PYTHON:-} python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "run.sh: Python 3.11 or newer is needed (none found on PATH)" >&2
  return 1
}

ensure_venv() {
  local stamp=.venv/.ecg2abp-installed
  if [[ -f $stamp && $stamp -nt pyproject.toml ]]; then
    return 0
  fi
  local python
  python=$(find_python)
  if [[ ! -x .venv/bin/python ]]; then
    if ! "$python" -m venv .venv 2>/dev/null; then
      if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        rm -rf .venv && "$python" -m venv .venv
      else
        echo "run.sh: '$python -m venv' failed; install your distribution's python3-venv" >&2
        exit 1
      fi
    fi
  fi
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "${ECG2ABP_TORCH:-torch==2.13.0}"
  .venv/bin/python -m pip install -q -e ".[dev,workflow,slurm]"
  touch "$stamp"
}

case "${1:-}" in
  demo)
    ensure_venv
    shift
    exec .venv/bin/snakemake --profile profiles/local \
      --configfile config/config.yaml config/demo.yaml "$@"
    ;;
  test)
    ensure_venv
    shift
    .venv/bin/ruff check src tests workflow
    .venv/bin/ruff format --check src tests workflow
    .venv/bin/snakemake --lint >/dev/null || { .venv/bin/snakemake --lint; exit 1; }
    .venv/bin/mkdocs build --strict --quiet
    exec .venv/bin/python -m pytest -q -n 2 --dist loadfile "$@"
    ;;
  *)
    echo "usage: bash run.sh demo|test [extra snakemake / pytest arguments]" >&2
    exit 2
    ;;
esac
