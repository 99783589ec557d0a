#!/usr/bin/env bash
# deps.sh: install the Debian packages hotpath needs to build and test.
# Idempotent: only packages that are missing are installed. Needs root for
# apt-get; without root it prints the exact command to run instead.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config clang libomp-dev
  libevent-dev            # HTTP server
  libcurl4-openssl-dev    # upstream client
  libjansson-dev          # JSON
  libyaml-dev             # config
  libsqlite3-dev          # ledger, keys
  libssl-dev              # SHA-256 and random bytes for key hashes (libcrypto)
  libpcre2-dev            # tokenizer pre-splitting, guardrails
  libutf8proc-dev         # Unicode normalization
  libcmocka-dev           # unit tests
  python3-numpy           # reference forward pass in tests
  nodejs npm              # real-client tests (openai SDK)
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    # node/npm may come from outside Debian (e.g. NodeSource); accept a working binary.
    case "$p" in
      nodejs) command -v node >/dev/null 2>&1 && continue ;;
      npm) command -v npm >/dev/null 2>&1 && continue ;;
    esac
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all packages present"
  exit 0
fi

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo apt-get update -q && sudo env DEBIAN_FRONTEND=noninteractive $cmd
    exit 0
  fi
  echo "deps: missing packages: ${missing[*]}" >&2
  echo "deps: run as root:  apt-get update && $cmd" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
apt-get update -q
DEBIAN_FRONTEND=noninteractive $cmd
