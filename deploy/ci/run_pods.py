#!/usr/bin/env python3
"""Runs the chart's pods as real processes, from the rendered StatefulSet.

Usage: run_pods.py RENDERED.yaml AURORA_BINARY   (as root: it needs mount namespaces)

No Kubernetes here, so this plays the parts the cluster would: each pod is the
`aurora` binary started with the container's args and env exactly as rendered
(the downward API's POD_NAME/POD_IP filled in, secretKeyRefs read from the rendered
Secret, the ConfigMap written where --config points), in its own mount namespace
whose /etc/hosts is a file this script edits — the pods' DNS names (the headless
Service with publishNotReadyAddresses) appear there as each pod "gets its IP".
All pods share this machine's network namespace, so each listens on its own
loopback address (127.0.1.x) instead of 0.0.0.0: the one argument changed.

With the default render (no witness), in the order a `helm install` and an HPA
scale-up would do it:
  1. both founders start at once (podManagementPolicy: Parallel), while aurora-1's
     name does not resolve yet for 3 s: aurora-0 keeps retrying it, then joins;
  2. both become ready (/health/ready 200), elect a leader, and list 2 voters;
  3. a third pod (aurora-2, as the HPA adds it) joins as a newcomer, becomes ready
     and is admitted as a third voter;
  4. SIGTERM (a scale-down) makes it leave: exit 0, and the roster is back to 2;
  5. aurora-1 is "rescheduled": SIGTERM, then started again with its volume and a new
     IP (its DNS name follows): it rejoins as itself and is a voter again.
With the HA render (values-ha-3-witness.yaml): all four start at once; exactly one
serving pod is ready (the leader), the others answer 503 standby; 4 voters; SIGKILL of
the leader, and another serving pod becomes the only ready one.
Prints the times measured; exit 1 with the logs on any failure.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

from pod_env import pod_env, secret_data

ROOT = tempfile.mkdtemp(prefix="aurora-pods-")
HOSTS = os.path.join(ROOT, "hosts")
T0 = time.monotonic()


def log(msg):
    print(f"  [{time.monotonic() - T0:6.2f} s] {msg}", flush=True)


def load(path):
    objs = [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d]
    sts = next(o for o in objs if o["kind"] == "StatefulSet" and not o["metadata"]["name"].endswith("-witness"))
    witness = next((o for o in objs if o["kind"] == "StatefulSet" and o["metadata"]["name"].endswith("-witness")), None)
    cm = next(o for o in objs if o["kind"] == "ConfigMap")
    secret = next(o for o in objs if o["kind"] == "Secret")
    return sts, witness, cm, secret_data(secret)


class Pod:
    def __init__(self, sts, cm, secret, binary, ordinal, net=1):
        self.name = f"{sts['metadata']['name']}-{ordinal}"
        self.ip = f"127.0.{net}.{10 + ordinal}"
        c = sts["spec"]["template"]["spec"]["containers"][0]
        domain = sts["spec"]["serviceName"]
        env_list = c["env"]
        self.seeds = next(e["value"] for e in env_list if e["name"] == "CLUSTER_SEED_NODES").split(",")
        self.dns = next(s for s in self.seeds if s.startswith(sts["metadata"]["name"] + "-0.")).split(":")[0]
        self.dns = self.dns.replace(f"{sts['metadata']['name']}-0.", f"{self.name}.", 1)
        assert domain in self.dns, (domain, self.dns)
        home = os.path.join(ROOT, self.name)
        os.makedirs(os.path.join(home, "etc"), exist_ok=True)
        args = list(c["args"])
        port = int(args[args.index("--listen") + 1].rsplit(":", 1)[1])
        self.http = f"http://{self.ip}:{port}"
        args[args.index("--listen") + 1] = f"{self.ip}:{port}"
        config = args[args.index("--config") + 1]
        local_config = os.path.join(home, "etc", os.path.basename(config))
        open(local_config, "w", encoding="utf-8").write(cm["data"][os.path.basename(config)])
        args[args.index("--config") + 1] = local_config
        args[args.index("--data-dir") + 1] = os.path.join(home, "data", "node")
        env = pod_env(c, secret, {"POD_NAME": self.name, "POD_IP": self.ip})
        self.token = env["AURORA_ADMIN_TOKEN"]
        self.log_path = os.path.join(home, f"aurora-{self.ip}.log")
        ALL.append(self)
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', HOSTS, binary, *args],
            env=env, stdout=subprocess.DEVNULL, stderr=open(self.log_path, "w"))

    def get(self, path, admin=False):
        headers = {"authorization": f"Bearer {self.token}"} if admin else {}
        try:
            with urllib.request.urlopen(urllib.request.Request(self.http + path, headers=headers), timeout=3) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return None, ""

    def status(self):
        code, body = self.get("/admin/api/cluster/status", admin=True)
        return json.loads(body) if code == 200 else {}

    def logs(self):
        return open(self.log_path, encoding="utf-8", errors="replace").read()


def hosts(pods):
    lines = ["127.0.0.1 localhost"] + [f"{p.ip} {p.dns}" for p in pods]
    with open(HOSTS, "r+", encoding="utf-8") as f:  # in place: the bind mounts see it
        f.seek(0)
        f.write("\n".join(lines) + "\n")
        f.truncate()


def wait(what, limit, ok, pods):
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if ok():
            took = time.monotonic() - start
            log(f"{what}: {took:.2f} s")
            return took
        for p in pods:
            if p.proc.poll() is not None:
                fail(f"{p.name} exited with {p.proc.returncode} while waiting for {what}", pods)
        time.sleep(0.1)
    fail(f"timed out after {limit} s waiting for {what}", pods)


def fail(msg, pods):
    print(f"FAIL: {msg}")
    for p in pods:
        print(f"---- {p.name} log (last 40 lines)")
        print("\n".join(p.logs().splitlines()[-40:]))
    stop(pods)
    sys.exit(1)


def stop(pods):
    for p in pods:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()


def scale_out_and_in(sts, cm, secret, binary):
    """The default render: 2 founders, active_active, an HPA scale-up and -down."""
    replicas = sts["spec"]["replicas"]
    assert replicas == 2, f"this run expects the default 2 founders, got {replicas}"
    pods = []
    # aurora-0's name exists at once; aurora-1's only 3 s later (its pod gets its IP later).
    pods.append(Pod(sts, cm, secret, binary, 0))
    hosts(pods)
    pods.append(Pod(sts, cm, secret, binary, 1))
    log("both founders started at once; aurora-1 does not resolve yet")
    time.sleep(3)
    code, _ = pods[0].get("/health")
    if code != 200:
        fail("aurora-0 is not up while a seed name does not resolve", pods)
    m = pods[0].get("/metrics")[1]
    unresolved = re.search(r"^aurora_cluster_seeds_unresolved (\d+)", m, re.M)
    log(f"aurora-0 up, aurora_cluster_seeds_unresolved {unresolved.group(1) if unresolved else '?'}, ready: {pods[0].get('/health/ready')[0]}")
    hosts(pods)
    log("aurora-1's name resolves now")
    wait("both founders ready", 60, lambda: all(p.get("/health/ready")[0] == 200 for p in pods), pods)
    wait("one leader, 2 voters on both", 60,
         lambda: all(s.get("leader") and len(s.get("voters", [])) == 2 for s in (p.status() for p in pods))
         and len({p.status().get("leader") for p in pods}) == 1, pods)
    leader = pods[0].status()["leader"]
    log(f"leader {leader}, epoch {pods[0].status().get('epoch')}")

    pods.append(Pod(sts, cm, secret, binary, 2))
    hosts(pods)
    log("scale-up: aurora-2 started (not a founder: bootstrap_expect 0)")
    wait("aurora-2 ready", 60, lambda: pods[2].get("/health/ready")[0] == 200, pods)
    wait("aurora-2 admitted as the third voter", 60,
         lambda: all(len(p.status().get("voters", [])) == 3 for p in pods), pods)

    start = time.monotonic()
    pods[2].proc.send_signal(signal.SIGTERM)
    code = pods[2].proc.wait(timeout=int(sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]))
    log(f"scale-down: aurora-2 exited {code} {time.monotonic() - start:.2f} s after SIGTERM")
    if code != 0:
        fail(f"aurora-2 exited {code} after SIGTERM", pods)
    rest = pods[:2]
    wait("roster back to 2 voters", 60, lambda: all(len(p.status().get("voters", [])) == 2 for p in rest), rest)

    # A pod rescheduled onto another node: SIGTERM, then the same name and volume
    # with a new IP (the DNS record follows it). It must rejoin as itself.
    old = rest[1]
    old.proc.send_signal(signal.SIGTERM)
    old.proc.wait(timeout=60)
    moved = Pod(sts, cm, secret, binary, 1, net=3)
    rest = [rest[0], moved]
    hosts(rest)
    log(f"{moved.name} rescheduled: same volume, new IP {moved.ip}")

    def sees_new_address():
        rows = json.loads(rest[0].get("/admin/api/cluster/nodes", admin=True)[1] or "{}").get("data", [])
        return any(r.get("name") == moved.name and r.get("state") == "alive" for r in rows)

    wait(f"{moved.name} back: ready, alive on aurora-0", 60,
         lambda: moved.get("/health/ready")[0] == 200 and sees_new_address(), rest)
    wait("2 voters again, one leader", 60,
         lambda: all(len(p.status().get("voters", [])) == 2 for p in rest)
         and len({p.status().get("leader") for p in rest}) == 1 and rest[0].status().get("leader"), rest)
    stop(pods + rest)
    print(f"pods: the chart's StatefulSet ran as {len(pods) + 1} real processes: every step passed")


def ready_codes(pods):
    return sorted(p.get("/health/ready")[0] or 0 for p in pods)


def failover(sts, witness, cm, secret, binary):
    """values-ha-3-witness.yaml: 3 serving pods and the witness, active_passive. All
    start at once; exactly one serving pod is ready (the leader), the others answer
    503 standby naming it; 4 voters; then the leader is killed (SIGKILL, a lost
    node) and another serving pod becomes the only ready one."""
    replicas = sts["spec"]["replicas"]
    pods = [Pod(sts, cm, secret, binary, i) for i in range(replicas)]
    wit = Pod(witness, cm, secret, binary, 0, net=2)
    everyone = pods + [wit]
    hosts(everyone)
    log(f"{replicas} serving pods and the witness started at once (active_passive)")
    wait("one ready serving pod, the others standby", 90,
         lambda: ready_codes(pods) == [200] + [503] * (replicas - 1)
         and all("standby" in p.get("/health/ready")[1] for p in pods if p.get("/health/ready")[0] == 503), everyone)
    wait("4 voters and one leader on every pod", 60,
         lambda: all(len(s.get("voters", [])) == replicas + 1 for s in (p.status() for p in everyone))
         and len({p.status().get("leader") for p in everyone}) == 1, everyone)
    check = wit.get("/health/ready")
    log(f"witness /health/ready: {check[0]} {check[1]}")
    leader = next(p for p in pods if p.get("/health/ready")[0] == 200)
    epoch = leader.status().get("epoch")
    log(f"leader {leader.name} (epoch {epoch}); SIGKILL it")
    leader.proc.kill()
    leader.proc.wait()
    rest = [p for p in pods if p is not leader]
    took = wait("another serving pod is the only ready one", 60,
                lambda: ready_codes(rest) == [200] + [503] * (len(rest) - 1), rest + [wit])
    new = next(p for p in rest if p.get("/health/ready")[0] == 200)
    log(f"new leader {new.name} (epoch {new.status().get('epoch')}), {took:.2f} s after the kill")
    stop(everyone)
    print(f"pods: the HA render ran as {len(everyone)} real processes: every step passed")


ALL = []


def main():
    try:
        run()
    finally:
        stop(ALL)


def run():
    sts, witness, cm, secret = load(sys.argv[1])
    binary = os.path.abspath(sys.argv[2])
    open(HOSTS, "w").close()
    if witness is None:
        scale_out_and_in(sts, cm, secret, binary)
    else:
        failover(sts, witness, cm, secret, binary)



if __name__ == "__main__":
    main()
