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
  libcurl4-openssl-dev  # S3 and Azure Blob over HTTPS
  ca-certificates openssl  # openssl(1) makes the HTTPS test certificate
  attr acl            # setfattr/getfattr, setfacl for tests
  util-linux          # script(1) for tty tests
  python3             # demo and bench helpers
  tzdata              # time zones for retention and schedules (also read by the cron test's Python zoneinfo oracle)
  clang libclang-rt-14-dev  # the libFuzzer targets (make fuzz): clang 14 and its fuzzer/ASan/UBSan runtimes
  libhowardhinnant-date-dev  # date/tz.h + libdate-tz: zone conversions for retention, on tzdata's files (no download)
  libpq-dev           # PostgreSQL client library (pg backup, restore validation)
  postgresql-15 postgresql-client-15  # the server the PostgreSQL tests start (as an unprivileged user)
  libsqlite3-dev      # the server's operations catalog
  libyaml-cpp-dev     # haven.yaml (with line and column of every key)
  libcpp-httplib-dev  # the server's REST API (HTTP/HTTPS)
  prometheus          # promtool: the tests check GET /metrics with `promtool check metrics`
  python3-aiosmtpd    # a real SMTP server (with STARTTLS and AUTH) for the e-mail alert tests
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
  # Installing postgresql-15 would also create and start a "main" cluster on port 5432; the
  # tests start their own clusters, so tell postgresql-common not to create one.
  if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    $SUDO mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/haven.conf >/dev/null
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: all packages present"

# Node.js for the object-storage API servers the tests run on loopback (s3rver, Azurite).
# Debian 12 ships nodejs 18 and npm; a machine that already has node and npm keeps its own.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup: installing nodejs npm"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
# Pinned versions (azurite after 3.35 needs node 22). Tests look here, or in $HAVEN_TEST_SERVERS.
SERVERS=${HAVEN_TEST_SERVERS:-/opt/haven-test-servers}
if [ ! -x "$SERVERS/node_modules/.bin/s3rver" ] || [ ! -x "$SERVERS/node_modules/.bin/azurite-blob" ]; then
  echo "setup: installing s3rver and azurite into $SERVERS"
  $SUDO mkdir -p "$SERVERS"
  # Node trusts only its own CA list unless told; use the system's store too (machines behind a
  # TLS-inspecting proxy add its CA there).
  $SUDO env NODE_EXTRA_CA_CERTS="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}" \
    npm install --prefix "$SERVERS" --no-audit --no-fund --loglevel=error s3rver@3.7.1 azurite@3.35.0 >/dev/null
fi
echo "setup: test servers present"
