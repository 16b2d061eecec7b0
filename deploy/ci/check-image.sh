#!/usr/bin/env bash
# Lints the Dockerfile with hadolint (no ignores: it must be clean). There is no
# Docker daemon here; that the binary starts from the Dockerfile's ENV, ENTRYPOINT
# and CMD is gateway/tests/image.rs (cargo test). A known-bad Dockerfile must fail
# the same lint, so a hadolint that silently checks nothing fails CI too.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=deploy/ci/tools.sh
source "$root/deploy/ci/tools.sh"

"$HADOLINT" --version
bad="$(mktemp)"
trap 'rm -f "$bad"' EXIT
printf 'FROM debian\nRUN apt-get install curl\n' >"$bad"
if "$HADOLINT" "$bad" >/dev/null 2>&1; then
    echo "FAIL: hadolint passed a Dockerfile with an untagged image and unpinned apt" >&2
    exit 1
fi
"$HADOLINT" --failure-threshold info "$root/Dockerfile"
echo "hadolint: Dockerfile clean"
