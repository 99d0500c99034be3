#!/usr/bin/env bash
# The dashboard in a real browser: headless Chromium (Debian's chromium and chromium-driver)
# driven by selenium (PyPI, pinned) through scripts/dashboard-browser.py.
#
#   scripts/check-dashboard.sh          # about a minute once built; screenshots in $OUT
#
# It starts, all on loopback: a webhook receiver (answers 204), a hub on SQLite with a
# detractor rule, an agent enrolled to it for web-eu and branch-042, a few ratings through
# the agent, and a manager's token; then the browser signs in, sees a detractor sent through
# the agent appear as a case, assigns and completes it, and saves a screenshot of each page.
# Everything it starts is stopped at the end; every wait is bounded.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
name=check-dashboard
. scripts/lib/selenium.sh

out="${OUT:-$(mktemp -d -t dashboard-screens.XXXXXX)}"
mkdir -p "$out"
rules='  - {name: detractor, scale: nps, notify: [manager], acknowledgeWithin: 15m, escalate: [manager], closeWithin: 1d, remindBefore: 1h}'
. scripts/lib/operations-setup.sh
# Some history for the overview: promoters, passives and detractors on both sites.
for index in $(seq 0 19); do
    site=$([ $((index % 2)) = 0 ] && echo branch-042 || echo web-eu)
    curl -fs --max-time 10 -o /dev/null -H 'Content-Type: application/json' \
        -d "{\"source\":\"popup\",\"scale\":\"nps\",\"score\":$(((index * 7) % 11)),\"site\":\"$site\",\"subject\":\"history\"}" "http://127.0.0.1:$intake/v1/feedback"
done
token=$("$bin/feedback-hub" tokens add --config "$work/hub/hub.yaml" --name "Branch manager" --role manager --any-site 2>/dev/null)

echo "== hub on http://127.0.0.1:$http; Chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}'); screenshots in $out"
SE_OFFLINE=true timeout 300 "$venv/bin/python" scripts/dashboard-browser.py "http://127.0.0.1:$http" "$token" "http://127.0.0.1:$intake" "$out"
if grep -qiE "fatal|panicked|SIGSEGV|Crash" "$work/hub.log"; then
    echo "check-dashboard: the hub logged a crash:" >&2
    tail -20 "$work/hub.log" >&2
    exit 1
fi
echo "check-dashboard: screenshots in $out"
