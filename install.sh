#!/usr/bin/env bash
# Set up everything polarbear-workflow needs on a fresh Debian/Ubuntu machine (run as root or
# with sudo available): bedtools (for pybedtools) and the pinned Python packages.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v bedtools >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq bedtools
fi
python3 -m pip install -q -r requirements.txt
python3 -m pip install -q --no-deps -e .
echo "polarbear-workflow installed: $(python3 -c 'import workflow_lib; print(workflow_lib.__version__)')"
