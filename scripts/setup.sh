#!/usr/bin/env bash
# Installs every system package Haven needs to build, test and run its demo.
# Idempotent: safe to run again; it installs only what is missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git
  libssl-dev          # AES-256-GCM, HKDF (OpenSSL 3)
  libsodium-dev       # Argon2id, keyed BLAKE2b
  libzstd-dev         # compression
  nlohmann-json3-dev  # JSON and CBOR encoding
  libcli11-dev        # command-line parsing
  libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev
  libacl1-dev         # POSIX ACLs (file backup)
  attr acl            # setfattr/getfattr, setfacl for tests
  util-linux          # script(1) for tty tests
  python3             # demo and bench helpers
  tzdata              # time zones for retention (forget --timezone)
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: all packages present"
