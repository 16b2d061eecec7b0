"""The environment a rendered container gets, as the kubelet would build it.

Shared by check_rendered.py and run_pods.py: `value`s with `$(VAR)` references
expanded from the downward-API values given (POD_NAME, POD_IP), `secretKeyRef`s read
from the rendered Secret's data, `fieldRef`s from the same values; PATH from here.
"""

import base64
import os
import re


def secret_data(secret):
    """The rendered Secret's data, decoded."""
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


def pod_env(container, secrets, values):
    env = {"PATH": os.environ.get("PATH", "")}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: values.get(m.group(1), m.group(0)), e["value"])
        elif "secretKeyRef" in e.get("valueFrom", {}):
            env[e["name"]] = secrets[e["valueFrom"]["secretKeyRef"]["key"]]
        elif e["name"] in values:
            env[e["name"]] = values[e["name"]]
    return env
