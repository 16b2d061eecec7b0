#!/usr/bin/env python3
"""Checks deploy/prometheus/aurora-alerts.yaml against what a real node exports.

Usage: check_alerts.py RULES.yaml METRICS.txt

METRICS.txt is a real node's /metrics (deploy/ci/check-alerts.sh starts one). Every
expression is parsed with a PromQL parser (promql-parser, the Rust parser's Python
binding); every metric it selects must be exported by the node (as a series or a
HELP line), and every label value an equality or alternation matcher names must be
one the node exports for that metric, when it exports any series of it yet. `up` is
Prometheus's own; `job` and `instance` are target labels. Each rule also needs a
severity and a summary and description. A rule naming a metric that does not exist
is checked to fail, so this check cannot pass vacuously.
"""

import re
import sys

import promql_parser as pq
import yaml

TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "endpoint", "container"}
PROMETHEUS_OWN = {"up"}


def exported(metrics_text):
    """name -> {label -> set of values} for series; names with a HELP line too."""
    series = {}
    helped = set()
    for line in metrics_text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s", line)
        if not m:
            continue
        labels = series.setdefault(m.group(1), {})
        for k, v in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""):
            labels.setdefault(k, set()).add(v)
    return series, helped


def selectors(expr):
    out = []

    def visit(node):
        if isinstance(node, pq.VectorSelector):
            out.append((node.name, [(m.name, str(m.op), m.value) for m in node.matchers.matchers]))
        return True

    pq.walk(pq.parse(expr), visit)
    return out


def check_rule(rule, series, helped):
    problems = []
    name = rule.get("alert", "?")
    for key in ("alert", "expr"):
        if not rule.get(key):
            problems.append(f"{name}: no {key}")
    if rule.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
        problems.append(f"{name}: labels.severity must be critical, warning or info")
    for key in ("summary", "description"):
        if not rule.get("annotations", {}).get(key):
            problems.append(f"{name}: annotations.{key} missing")
    try:
        found = selectors(rule.get("expr", ""))
    except Exception as e:  # the parser raises on a syntax error
        return problems + [f"{name}: expr does not parse: {e}"]
    for metric, matchers in found:
        if metric in PROMETHEUS_OWN:
            continue
        base = re.sub(r"_(bucket|sum|count)$", "", metric)
        if metric not in series and metric not in helped and base not in helped:
            problems.append(f"{name}: metric {metric} is not exported by the node")
            continue
        labels = series.get(metric)
        if not labels:
            continue  # exported, but no series yet (no event of that kind): name only
        for label, op, value in matchers:
            if label in TARGET_LABELS or label == "__name__":
                continue
            if op == "MatchOp.Equal":
                wanted = [value]
            elif op == "MatchOp.Re" and re.fullmatch(r"[\w/.-]+(\|[\w/.-]+)*", value):
                wanted = value.split("|")
            else:
                continue
            have = labels.get(label, set())
            for w in wanted:
                if w not in have:
                    problems.append(f"{name}: {metric}{{{label}=\"{w}\"}}: the node exports {label} values {sorted(have)}")
    return problems


def main():
    rules_path, metrics_path = sys.argv[1], sys.argv[2]
    with open(metrics_path, encoding="utf-8") as f:
        series, helped = exported(f.read())
    with open(rules_path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    rules = [r for g in doc["groups"] for r in g["rules"]]
    names = [r.get("alert") for r in rules]
    problems = [f"duplicate alert {n}" for n in set(names) if names.count(n) > 1]
    used = set()
    for rule in rules:
        problems += check_rule(rule, series, helped)
        try:
            used |= {m for m, _ in selectors(rule["expr"])}
        except Exception:
            pass
    # The check itself must be able to fail.
    bogus = {"alert": "Bogus", "expr": "aurora_no_such_metric_total > 0",
             "labels": {"severity": "info"}, "annotations": {"summary": "s", "description": "d"}}
    if not check_rule(bogus, series, helped):
        problems.append("self-test: a rule on a metric that does not exist passed")
    bad_label = dict(bogus, expr='aurora_readiness{status="no_such_status"} == 1')
    if "aurora_readiness" in series and not check_rule(bad_label, series, helped):
        problems.append("self-test: a label value the node does not export passed")
    print(f"{rules_path}: {len(rules)} alerts over {len(used)} metrics: {', '.join(sorted(used))}")
    if problems:
        for p in problems:
            print(f"FAIL: {p}")
        sys.exit(1)
    print("every alert parses and selects metrics (and label values) a real node exports")


if __name__ == "__main__":
    main()
