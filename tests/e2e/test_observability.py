"""Dashboards and alert rules ask for metrics the services really export.

Every PromQL expression of deploy/grafana/*.json and deploy/prometheus/alerts.yml is taken apart
into its selectors (metric name and label matchers); each metric must be a sample name in the
/metrics of a running instance (of the service the dashboard panel filters on with job="…", or of
any service for an alert), each matched label must exist on that metric, and each `label="value"`
must be a value the metric has. `job` and `instance` are Prometheus's own labels; `up` is
Prometheus's own metric.
"""
import glob
import json
import os
import re

import yaml

import lib

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan"}
PROMETHEUS_OWN = {"up"}
TARGET_LABELS = {"job", "instance"}


def selectors(expr):
    """[(metric, [(label, op, value)])] of a PromQL expression."""
    e = re.sub(r'\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)', " ", expr)
    e = re.sub(r"\[[^\]]*\]", " ", e)   # range vectors, $__rate_interval
    out = []
    for m in re.finditer(r'([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{([^}]*)\})?(\s*\()?', e):
        name, matchers, call = m.group(1), m.group(3), m.group(4)
        if call or name in KEYWORDS or (m.start() > 0 and e[m.start() - 1] in "$."):
            continue
        labels = re.findall(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"', matchers or "")
        out.append((name, labels))
    return out


def expressions():
    """[(where, job or None, expr)] from the dashboards and the alert rules."""
    found = []
    for path in sorted(glob.glob(os.path.join(lib.REPO, "deploy", "grafana", "*.json"))):
        dash = json.load(open(path))
        for panel in dash["panels"]:
            for t in panel.get("targets", []):
                job = re.search(r'job="([^"]+)"', t["expr"])
                found.append(("%s: %s" % (os.path.basename(path), panel["title"]), job and job.group(1), t["expr"]))
    alerts = yaml.safe_load(open(os.path.join(lib.REPO, "deploy", "prometheus", "alerts.yml")))
    for g in alerts["groups"]:
        for r in g["rules"]:
            found.append(("alerts.yml: %s" % r["alert"], None, r["expr"]))
    return found


def test_selector_parser_finds_metrics_and_matchers(ctx):
    got = selectors('histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket'
                    '{job="sync",route!="x"}[$__rate_interval]))) / on(job) max(up) > 1 and bool foo_total')
    assert got == [("http_request_duration_seconds_bucket", [("job", "=", "sync"), ("route", "!=", "x")]),
                   ("up", []), ("foo_total", [])], got


def test_every_dashboard_and_alert_metric_is_exported(ctx):
    exported = {}   # service -> {metric -> {label -> set(values)}}
    for inst in ctx.instances:
        svc = inst.split("-")[0]
        r = ctx.http("GET", ctx.direct(inst, "/metrics"), timeout=5)
        assert r.status == 200, "%s /metrics -> %d" % (inst, r.status)
        samples, _ = lib.parse_prometheus(r.body.decode())
        for name, labels, _v in samples:
            per = exported.setdefault(svc, {}).setdefault(name, {})
            for k, v in labels.items():
                per.setdefault(k, set()).add(v)
    union = {}
    for per_svc in exported.values():
        for name, labels in per_svc.items():
            for k, vs in labels.items():
                union.setdefault(name, {}).setdefault(k, set()).update(vs)
            union.setdefault(name, {})

    exprs = expressions()
    assert len([e for e in exprs if e[0].endswith(".json") or ".json:" in e[0]]) >= 40, "too few panel queries found"
    problems, checked = [], 0
    for where, job, expr in exprs:
        pool = exported.get(job, {}) if job else union
        if job and job not in exported:
            problems.append("%s: job=%r is not a service" % (where, job))
            continue
        for name, matchers in selectors(expr):
            if name in PROMETHEUS_OWN:
                continue
            checked += 1
            if name not in pool:
                problems.append("%s: %s is not exported by %s" % (where, name, job or "any service"))
                continue
            for label, op, value in matchers:
                if label in TARGET_LABELS:
                    continue
                if label not in pool[name]:
                    problems.append("%s: %s has no label %s" % (where, name, label))
                elif op == "=" and value not in pool[name][label]:
                    problems.append("%s: %s{%s=%r} is never exported (values: %s)" % (
                        where, name, label, value, ", ".join(sorted(pool[name][label]))))
    assert checked > 50, "only %d selectors checked" % checked
    assert not problems, "\n".join(problems)
