#!/usr/bin/env bash
# The popup widget in a real browser: headless Chromium (Debian's chromium and
# chromium-driver) driven by selenium (PyPI, pinned) through scripts/widget-browser.py.
#
#   scripts/check-widget.sh          # under a minute once built; screenshots in $OUT
#
# It starts, all on loopback: a hub on SQLite, an agent enrolled to it whose intake has a
# survey key for pages on one origin, and two static web servers: the product page on that
# origin and the same page (in Russian) on another origin. The browser answers the widget with a 3 and a
# comment, which must reach the hub as an NPS 3 rating with that comment; a reload must
# not show the widget again; the page on the other origin must not be able to submit; the
# page's own script must run beside the widget. Every wait is bounded; everything started
# is stopped at the end.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
name=check-widget
. scripts/lib/selenium.sh

out="${OUT:-$(mktemp -d -t widget-screens.XXXXXX)}"
mkdir -p "$out"
rules='  - {name: detractor, scale: nps, notify: [manager]}'
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
shop=$(free_port); other=$(free_port)
survey_key="fms_$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
intake_settings=", surveyKeys: [{name: onboarding, key: \"$survey_key\", survey: onboarding-nps, site: web-eu, origins: [\"http://127.0.0.1:$shop\"]}]"
. scripts/lib/operations-setup.sh

# The product page, served from two origins; only the first is the survey key's.
mkdir -p "$work/site"
cat > "$work/site/index.html" <<HTML
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shop</title><link rel="icon" href="data:,">
<meta http-equiv="Content-Security-Policy" content="default-src 'self'; script-src 'self' 'unsafe-inline' http://127.0.0.1:$intake; connect-src http://127.0.0.1:$intake; style-src 'self'; img-src 'self' data:"></head>
<body>
<h1>Your order is on its way</h1>
<p id="page-script">the page's own script has not run</p>
<script src="http://127.0.0.1:$intake/v1/widget.js" data-key="$survey_key" data-survey="onboarding-nps"
        data-customer="cust-42" data-days="30" data-lang="en"></script>
<script>document.getElementById('page-script').textContent = 'the page script ran';</script>
</body></html>
HTML
# The same page in Russian, for the other origin.
sed -e 's/lang="en"/lang="ru"/' -e 's/data-lang="en"/data-lang="ru"/' "$work/site/index.html" > "$work/site/ru.html"
for p in "$shop" "$other"; do
    python3 -m http.server "$p" --bind 127.0.0.1 --directory "$work/site" > /dev/null 2>&1 &
    pids+=($!)
    ready "http://127.0.0.1:$p/index.html" || { echo "check-widget: the page server did not start" >&2; exit 1; }
done
token=$("$bin/feedback-hub" tokens add --config "$work/hub/hub.yaml" --name "Widget check" --role viewer --any-site 2>/dev/null)

echo "== agent on http://127.0.0.1:$intake; pages on :$shop (allowed) and :$other; screenshots in $out"
SE_OFFLINE=true timeout 300 "$venv/bin/python" scripts/widget-browser.py \
    "http://127.0.0.1:$shop/index.html" "http://127.0.0.1:$other/ru.html" "http://127.0.0.1:$http" "$token" "http://127.0.0.1:$intake" "$out"
if grep -qiE "fatal|panicked|SIGSEGV|Crash" "$work/hub.log" "$work/agent.log"; then
    echo "check-widget: a process logged a crash:" >&2
    tail -20 "$work/hub.log" "$work/agent.log" >&2
    exit 1
fi
echo "check-widget: OK; screenshots in $out"
