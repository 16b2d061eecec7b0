#!/usr/bin/env python3
"""Closed-loop latency of the response cache: hit vs miss vs no cache.

Usage: cache_client.py N URL [URL ...]

Sends, one at a time on keep-alive connections (one per node), N chat requests of
distinct prompts in each phase (skip and miss interleaved) and prints p50/p99/max per
phase:

  skip  every prompt new, `x-aurora-cache: skip`: the path without the cache;
  miss  every prompt new, `x-aurora-cache: use`: looked up (at the key's owner,
        which may be another node), answered by the upstream, stored;
  hit   the prompts of `miss` again, each sent to every node (with three nodes, one
        in three asks the owner itself, two in three ask it over QUIC).

Prompt i of a phase goes to node i mod n. Each answer's `x-aurora-cache` header is
checked (skip: none, miss: miss, hit: hit); a wrong one is counted and reported.
"""
import http.client
import json
import sys
import time
import urllib.parse

MODEL = "up/gpt-4o-mini"


def connect(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=10)


def ask(conn, prompt, cache):
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": prompt}]})
    headers = {"content-type": "application/json", "x-aurora-cache": cache}
    started = time.perf_counter_ns()
    conn.request("POST", "/v1/chat/completions", body, headers)
    response = response_of(conn)
    took = time.perf_counter_ns() - started
    return response.status, response.getheader("x-aurora-cache") or "", took


def response_of(conn):
    response = conn.getresponse()
    response.read()
    return response


def percentile(sorted_ns, p):
    return sorted_ns[min(len(sorted_ns) - 1, int(p * len(sorted_ns)))]


def report(name, samples, wrong):
    s = sorted(samples)
    ms = lambda ns: ns / 1e6
    print(f"{name:<5} n={len(s):<5} p50 {ms(percentile(s, 0.5)):7.3f} ms  "
          f"p99 {ms(percentile(s, 0.99)):7.3f} ms  max {ms(s[-1]):7.3f} ms"
          + (f"  WRONG {wrong}" if wrong else ""))


def main():
    n = int(sys.argv[1])
    conns = [connect(u) for u in sys.argv[2:]]
    nodes = len(conns)
    run = str(time.time_ns())
    # Warm-up: connections, pools, the owner links; not measured.
    for i in range(200):
        ask(conns[i % nodes], f"warm {run} {i}", "use")
        ask(conns[(i + 1) % nodes], f"warm {run} {i}", "use")
    # skip and miss interleaved, so neither gains from running later (warmer caches,
    # another moment of a noisy machine).
    phases = [("skip", "skip", ""), ("miss", "use", "miss")]
    samples = {name: [] for name, _, _ in phases}
    wrong = {name: 0 for name, _, _ in phases}
    for i in range(n):
        for name, header, expect in phases:
            status, cache, took = ask(conns[i % nodes], f"{name} {run} {i}", header)
            samples[name].append(took)
            wrong[name] += status != 200 or cache != expect
    for name, _, _ in phases:
        report(name, samples[name], wrong[name])
    samples, wrong = [], 0
    for i in range(n):
        for k in range(nodes):
            status, cache, took = ask(conns[(i + 1 + k) % nodes], f"miss {run} {i}", "use")
            samples.append(took)
            wrong += status != 200 or cache != "hit"
    report("hit", samples, wrong)


if __name__ == "__main__":
    main()
