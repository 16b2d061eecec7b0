#!/usr/bin/env bash
# The Helm chart deploy/helm/aurora, rendered by a real helm (v3.17, see tools.sh):
#   1. helm lint, for the default values and values-ha-3-witness.yaml;
#   2. helm template for the default values, for values-ha-3-witness.yaml, with the
#      ServiceMonitor enabled, and with the witness (2 + witness);
#   3. every rendered manifest validated against the Kubernetes 1.30 schemas
#      (kubernetes-validate --strict). ServiceMonitor is a CRD of the Prometheus
#      Operator with no schema there: it alone is left out of the validation (of the
#      third render), and check_rendered.py checks its fields instead;
#   4. check_rendered.py asserts the rendered numbers (replicas, HPA and behaviour,
#      PDB, shutdown budget, probes, seeds) and runs `aurora config check` on the
#      rendered config with each pod's environment;
#   5. renders that must be refused are: terminationGracePeriodSeconds at or below the
#      drain budget, and an HPA in active_passive;
#   6. run_pods.py starts the default render's pods as real processes (founders at
#      once while a peer's DNS name does not resolve yet, leader election, an HPA
#      scale-up pod joining and a SIGTERM scale-down leaving), then the HA render's
#      (3 + witness, active_passive: one ready leader, standbys, SIGKILL of the
#      leader and the failover); needs root (mount namespaces), and says so and
#      skips that step without it.
# Usage: deploy/ci/check-chart.sh [path/to/aurora]  (default target/debug/aurora)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=deploy/ci/tools.sh
source "$root/deploy/ci/tools.sh"
bin="${1:-$root/target/debug/aurora}"
chart="$root/deploy/helm/aurora"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

"$HELM" version --short
"$HELM" lint --strict "$chart"
"$HELM" lint --strict "$chart" -f "$chart/values-ha-3-witness.yaml"

"$HELM" template aurora "$chart" --namespace aurora >"$out/default.yaml"
"$HELM" template aurora "$chart" --namespace aurora -f "$chart/values-ha-3-witness.yaml" >"$out/ha.yaml"
"$HELM" template aurora "$chart" --namespace aurora --set serviceMonitor.enabled=true >"$out/monitor.yaml"
# 2 nodes + witness, the smallest cluster that fails over (the seeds' default topology).
"$HELM" template aurora "$chart" --namespace aurora --set witness.enabled=true >"$out/witness.yaml"

# The validator must reject a manifest with an unknown field, or it checks nothing.
cat >"$out/bad.yaml" <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: bad}
spec: {ports: [{port: 80}], publishNotReady: true}
YAML
if "$KUBERNETES_VALIDATE" -k 1.30.0 --strict --quiet "$out/bad.yaml" >/dev/null 2>&1; then
    echo "FAIL: kubernetes-validate --strict accepted an unknown field" >&2
    exit 1
fi

# Everything but the ServiceMonitor (a CRD) of the third render.
"$CI_PYTHON" - "$out/monitor.yaml" "$out/monitor-core.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kept = [d for d in docs if d["kind"] != "ServiceMonitor"]
assert len(kept) == len(docs) - 1, "expected exactly one ServiceMonitor"
yaml.safe_dump_all(kept, open(sys.argv[2], "w"))
PY
"$KUBERNETES_VALIDATE" -k 1.30.0 --strict "$out/default.yaml" "$out/ha.yaml" "$out/monitor-core.yaml" "$out/witness.yaml"

for render in default ha monitor witness; do
    "$CI_PYTHON" "$root/deploy/ci/check_rendered.py" "$render" "$out/$render.yaml" "$bin"
done

# NOTES.txt is not rendered by `helm template`: render a copy of it as a template
# (wrapped in a YAML block) for both values files, so a broken NOTES fails here.
cp -r "$chart" "$out/notes-chart"
for values in "" "$chart/values-ha-3-witness.yaml"; do
    "$CI_PYTHON" - "$chart/templates/NOTES.txt" "$out/notes-chart/templates/notes-check.yaml" <<'PY'
import sys
text = open(sys.argv[1]).read()
open(sys.argv[2], "w").write("notes: |\n" + "".join("  " + line + "\n" for line in text.splitlines()))
PY
    rm -f "$out/notes-chart/templates/NOTES.txt"
    "$HELM" template aurora "$out/notes-chart" ${values:+-f "$values"} \
        --show-only templates/notes-check.yaml >"$out/notes.yaml"
    grep -q "serving node(s)" "$out/notes.yaml"
done
echo "NOTES.txt renders for both values files"

refuse() {
    local what="$1"
    shift
    if "$HELM" template aurora "$chart" "$@" >/dev/null 2>"$out/err"; then
        echo "FAIL: helm template accepted $what" >&2
        exit 1
    fi
    echo "refused as it should: $what: $(grep -v -e '^ *$' -e 'Use --debug' "$out/err" | tail -n 1)"
}
refuse "terminationGracePeriodSeconds 40 with a 40 s drain budget" \
    --set shutdown.terminationGracePeriodSeconds=40
refuse "an HPA in active_passive" --set cluster.failoverMode=active_passive
refuse "a failover mode the node does not know" --set cluster.failoverMode=active-active
refuse "a misspelt value (values.schema.json)" --set replicaCont=3
if [ "$(id -u)" -eq 0 ] && unshare --mount true 2>/dev/null; then
    "$CI_PYTHON" "$root/deploy/ci/run_pods.py" "$out/default.yaml" "$bin"
    "$CI_PYTHON" "$root/deploy/ci/run_pods.py" "$out/ha.yaml" "$bin"
else
    echo "SKIPPED run_pods.py: needs root for mount namespaces (CI runs as root)"
fi
echo "chart: lint, render, schema validation, value checks and pods passed"
