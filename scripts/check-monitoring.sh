#!/usr/bin/env bash
# Checks the monitoring files (docs/OPERATIONS.md, "Monitoring"):
#
#   - ops/prometheus/feedbackmesh.rules.yml with `promtool check rules`, and its unit tests
#     (feedbackmesh.rules.test.yml: each alert fires on the series that should raise it, when
#     it should, and not on a healthy fleet) with `promtool test rules`;
#   - every query of ops/grafana/feedbackmesh.json parses as PromQL (promtool, as recording
#     rules, with Grafana's $__rate_interval read as 5m) and every panel has a query;
#   - every metric the rules and the dashboard name is one the hub or the agent exports
#     (the names registered in Sources/, histogram series included), so a renamed metric
#     cannot leave an alert silently watching nothing.
#
# Needs promtool (Debian package `prometheus`; .ci/run installs it). Takes a few seconds.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
command -v promtool > /dev/null || { echo "check-monitoring: promtool is missing: apt-get install prometheus" >&2; exit 1; }

promtool check rules ops/prometheus/feedbackmesh.rules.yml
(cd ops/prometheus && promtool test rules feedbackmesh.rules.test.yml)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 - "$work/dashboard.rules.yml" <<'PY'
import json, re, sys, pathlib

dashboard = json.loads(pathlib.Path("ops/grafana/feedbackmesh.json").read_text())
rules, problems = [], []
for panel in dashboard["panels"]:
    if panel["type"] == "row":
        continue
    targets = panel.get("targets") or []
    if not targets:
        problems.append(f"panel {panel['title']!r} has no query")
    for target in targets:
        expr = target["expr"].replace("$__rate_interval", "5m")
        rules.append({"record": f"dashboard:panel_{panel['id']}_{target['refId']}", "expr": expr})
# JSON is YAML: promtool reads it as a rules file.
pathlib.Path(sys.argv[1]).write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))

# The metric names the code registers: literals, and the node server's "\(prefix)_…" names
# under the prefixes it is created with.
exported = set()
for source in pathlib.Path("Sources").rglob("*.swift"):
    text = source.read_text()
    exported.update(re.findall(r'"(feedback_(?:hub|agent|relay)_[a-z_]+)"', text))
    for name in re.findall(r'"\\\((?:self\.)?prefix\)_([a-z_]+)"', text):
        exported.update({f"feedback_hub_{name}", f"feedback_relay_{name}"})
used = {}
texts = {"ops/prometheus/feedbackmesh.rules.yml": pathlib.Path("ops/prometheus/feedbackmesh.rules.yml").read_text(),
         "ops/grafana/feedbackmesh.json": json.dumps(dashboard)}
for path, text in texts.items():
    for name in re.findall(r"\b(feedback_(?:hub|agent|relay)_[a-z_]+)\b", text):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if base not in exported and name not in exported:
            problems.append(f"{path}: {name} is not a metric the hub or the agent exports")
        used.setdefault(base, path)
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"dashboard: {len(rules)} queries in {sum(1 for p in dashboard['panels'] if p['type'] != 'row')} panels; "
      f"{len(used)} metrics named, all exported ({len(exported)} in all)")
PY
promtool check rules "$work/dashboard.rules.yml"
echo "check-monitoring: OK"
