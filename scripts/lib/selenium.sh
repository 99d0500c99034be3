# Shared by the browser checks (source it after setting `name`): checks Debian's chromium
# and chromium-driver are there and sets `venv` to a Python environment with selenium
# (PyPI, pinned), installing it on first use.
for tool in /usr/bin/chromium /usr/bin/chromedriver; do
    [ -x "$tool" ] || { echo "$name: $tool is missing (apt-get install chromium chromium-driver)" >&2; exit 1; }
done
version=4.51.0
venv="${SELENIUM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/feedbackmesh/selenium-$version}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import selenium' 2> /dev/null; then
    echo "== installing selenium $version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "selenium==$version"
fi
