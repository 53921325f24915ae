#!/usr/bin/env bash
# make demo: Haven's main job on embedded defaults, on a local repository in a temp directory.
set -euo pipefail
HAVEN=${1:-build/haven}
HAVEN=$(readlink -f "$HAVEN")
WORK=$(mktemp -d /tmp/haven-demo.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export HAVEN_REPOSITORY="$WORK/repo"
echo "demo password" > "$WORK/password"
export HAVEN_PASSWORD_FILE="$WORK/password"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "haven version"
"$HAVEN" version

step "haven init (Argon2id-wrapped random master key, AES-256-GCM objects)"
"$HAVEN" init

step "haven cat config (decrypted)"
"$HAVEN" cat config

step "haven key add / key list (a second password opens the same repository)"
echo "second password" > "$WORK/password2"
"$HAVEN" key add --new-password-file "$WORK/password2"
"$HAVEN" key list
HAVEN_PASSWORD_FILE="$WORK/password2" "$HAVEN" key list

step "a wrong password is refused with exit 12"
set +e
env -u HAVEN_PASSWORD_FILE HAVEN_PASSWORD=wrong "$HAVEN" cat config
rc=$?
set -e
echo "exit code: $rc"
[ "$rc" -eq 12 ]

step "the repository on disk"
find "$HAVEN_REPOSITORY" -maxdepth 2 | sort
echo
echo "demo finished"
