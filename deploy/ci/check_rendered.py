#!/usr/bin/env python3
"""Asserts what the Helm chart must render (deploy/ci/check-chart.sh calls this).

Usage: check_rendered.py default|ha|monitor|witness RENDERED.yaml [AURORA_BINARY]

Checks the numbers the issue and docs/operations.md promise (replicas, HPA and its
behaviour block, PDB, shutdown budget, probes, Parallel pod management, the peers
Service, seeds = founders), and with AURORA_BINARY runs `aurora config check` on the
rendered aurora.yaml / witness.yaml with the environment each StatefulSet gives its
first pod, so a key the binary does not know, or a value it refuses, fails here.
Every failure names what is wrong; exit 1 on any.
"""

import os
import subprocess
import sys
import tempfile

import yaml

from pod_env import pod_env, secret_data

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)


def docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def one(objs, kind, name=None):
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    check(len(found) == 1, f"exactly one {kind} {name or ''}: found {len(found)}")
    return found[0] if found else {}


def arg(container, flag):
    args = container.get("args", [])
    return args[args.index(flag) + 1] if flag in args else None


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def check_statefulset(sts, replicas, founders, witness):
    name = sts["metadata"]["name"]
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    env = env_of(c)
    check(spec.get("replicas") == replicas, f"{name}: replicas {spec.get('replicas')} != {replicas}")
    check(spec.get("podManagementPolicy") == "Parallel", f"{name}: podManagementPolicy must be Parallel")
    grace, drain, leave = (int(arg(c, f)) for f in ("--shutdown-grace-secs", "--drain-timeout-secs", "--leave-timeout-secs"))
    tgps = pod.get("terminationGracePeriodSeconds", 30)
    check(tgps > grace + drain + leave, f"{name}: terminationGracePeriodSeconds {tgps} <= grace+drain+leave {grace + drain + leave}")
    check(c["livenessProbe"]["httpGet"]["path"] == "/health", f"{name}: liveness on /health")
    ready = "/health" if witness else "/health/ready"
    check(c["readinessProbe"]["httpGet"]["path"] == ready, f"{name}: readiness on {ready}")
    check(env["CLUSTER_NODE_ID"].get("value") == "$(POD_NAME)", f"{name}: node id from the pod name")
    check(env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", f"{name}: POD_NAME downward API")
    check(env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP", f"{name}: POD_IP downward API")
    check(env["CLUSTER_BIND_ADDR"].get("value") == "$(POD_IP)", f"{name}: gossip binds the pod IP")
    for var in ("CLUSTER_SECRET", "AURORA_ADMIN_TOKEN"):
        check("secretKeyRef" in env[var].get("valueFrom", {}), f"{name}: {var} from a Secret")
    seeds = env["CLUSTER_SEED_NODES"]["value"].split(",")
    check(len(seeds) == founders, f"{name}: {len(seeds)} seeds, expected {founders} founders: {seeds}")
    own = f"{name}-0."
    check(any(s.startswith(own) for s in seeds), f"{name}: pod 0 ({own}...) is among the seeds: {seeds}")
    sc = c["securityContext"]
    check(sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False, f"{name}: hardened container")
    check(pod["securityContext"].get("runAsNonRoot") is True, f"{name}: runAsNonRoot")
    return seeds


def config_check(objs, sts, binary, ordinal, expect):
    """`aurora config check` of the file this StatefulSet's pod `ordinal` runs with:
    the binary must accept it, and its bootstrap_expect must be `expect` (founders:
    the number of seeds; a pod a scale-up added: 0, it joins)."""
    c = sts["spec"]["template"]["spec"]["containers"][0]
    cm = one(objs, "ConfigMap")
    secrets = secret_data(one(objs, "Secret"))
    file = os.path.basename(arg(c, "--config"))
    pod = f"{sts['metadata']['name']}-{ordinal}"
    env = pod_env(c, secrets, {"POD_NAME": pod, "POD_IP": "10.1.2.3"})
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, file)
        with open(path, "w", encoding="utf-8") as f:
            f.write(cm["data"][file])
        run = subprocess.run([binary, "config", "check", path], env=env, capture_output=True, text=True)
        out = (run.stdout.strip() or run.stderr.strip()).replace(path, file)
        print(f"  {pod}: aurora config check {out}")
        check(run.returncode == 0, f"{pod}: aurora config check {file} exited {run.returncode}: {run.stderr.strip()}")
        check(f"bootstrap_expect {expect}," in run.stdout, f"{pod}: expected bootstrap_expect {expect}: {out}")


def main():
    mode, path = sys.argv[1], sys.argv[2]
    binary = sys.argv[3] if len(sys.argv) > 3 else None
    objs = docs(path)
    kinds = sorted(o["kind"] for o in objs)
    print(f"{path}: {len(objs)} objects: {', '.join(kinds)}")
    peers = [o for o in objs if o["kind"] == "Service" and o["spec"].get("clusterIP") == "None"]
    check(len(peers) == 1 and peers[0]["spec"].get("publishNotReadyAddresses") is True,
          "one headless peers Service with publishNotReadyAddresses: true")
    pdb = one(objs, "PodDisruptionBudget")
    check(pdb.get("spec", {}).get("minAvailable") == 1, f"PDB minAvailable {pdb.get('spec', {}).get('minAvailable')} != 1")
    nodes = [o for o in objs if o["kind"] == "StatefulSet" and not o["metadata"]["name"].endswith("-witness")]
    check(len(nodes) == 1, "one serving StatefulSet")
    sts = nodes[0]
    spread = sts["spec"]["template"]["spec"].get("topologySpreadConstraints", [])
    check(any(t["topologyKey"] == "topology.kubernetes.io/zone" for t in spread), "topology spread across zones")
    if mode == "witness":
        # The default values with the witness: 2 serving nodes + 1 witness = 3 founders.
        check_statefulset(sts, 2, 3, False)
        witness = one(objs, "StatefulSet", sts["metadata"]["name"] + "-witness")
        if witness:
            check_statefulset(witness, 1, 3, True)
    if mode in ("default", "monitor"):
        check_statefulset(sts, 2, 2, False)
        check(sts["spec"]["updateStrategy"]["type"] == "RollingUpdate", "active_active rolls")
        hpa = one(objs, "HorizontalPodAutoscaler")
        spec = hpa.get("spec", {})
        check(spec.get("minReplicas") == 2 and spec.get("maxReplicas") == 10, f"HPA min/max {spec.get('minReplicas')}/{spec.get('maxReplicas')} != 2/10")
        cpu = [m for m in spec.get("metrics", []) if m.get("resource", {}).get("name") == "cpu"]
        check(len(cpu) == 1 and cpu[0]["resource"]["target"]["averageUtilization"] == 70, "HPA CPU 70 %")
        up = spec.get("behavior", {}).get("scaleUp", {})
        down = spec.get("behavior", {}).get("scaleDown", {})
        check(up.get("policies") == [{"type": "Percent", "value": 50, "periodSeconds": 60}], f"scale-up 50 %/60 s: {up}")
        check(down.get("policies") == [{"type": "Pods", "value": 1, "periodSeconds": 120}], f"scale-down 1 pod/120 s: {down}")
        check(down.get("stabilizationWindowSeconds") == 300, f"scale-down stabilisation 300 s: {down}")
        check(not [o for o in objs if o["metadata"]["name"].endswith("-witness")], "no witness by default")
    if mode == "ha":
        check_statefulset(sts, 3, 4, False)
        witness = one(objs, "StatefulSet", sts["metadata"]["name"] + "-witness")
        if witness:
            check_statefulset(witness, 1, 4, True)
            wc = witness["spec"]["template"]["spec"]["containers"][0]
            check(arg(wc, "--config").endswith("witness.yaml"), "the witness runs witness.yaml")
        cm = one(objs, "ConfigMap")
        check(yaml.safe_load(cm["data"]["witness.yaml"])["cluster"].get("role") == "witness", "witness.yaml has role: witness")
        check(env_of(sts["spec"]["template"]["spec"]["containers"][0])["CLUSTER_FAILOVER_MODE"]["value"] == "active_passive", "active_passive")
        check(sts["spec"]["updateStrategy"]["type"] == "OnDelete", "active_passive: OnDelete (standbys are never ready)")
        check(not [o for o in objs if o["kind"] == "HorizontalPodAutoscaler"], "no HPA in active_passive")
    if mode == "monitor":
        sm = one(objs, "ServiceMonitor")
        ep = sm.get("spec", {}).get("endpoints", [{}])[0]
        check(ep.get("path") == "/metrics" and ep.get("authorization", {}).get("type") == "Bearer", "ServiceMonitor scrapes /metrics with the admin token")
        sel = sm.get("spec", {}).get("selector", {}).get("matchLabels", {})
        check(sel.get("app.kubernetes.io/component") == "peers", "ServiceMonitor scrapes through the peers Service (standbys included)")
    if binary:
        founders = len(env_of(sts["spec"]["template"]["spec"]["containers"][0])["CLUSTER_SEED_NODES"]["value"].split(","))
        for s in [o for o in objs if o["kind"] == "StatefulSet"]:
            config_check(objs, s, binary, 0, founders)
        # A pod the HPA adds is no founder: it joins and is admitted by the leader.
        config_check(objs, sts, binary, 9, 0)
    if failures:
        for f in failures:
            print(f"FAIL: {f}")
        sys.exit(1)
    print(f"  {mode}: every check passed")


if __name__ == "__main__":
    main()
