#!/usr/bin/env bash
# Builds and checks the Debian packages (docs/OPERATIONS.md#debian-package):
#
#   - scripts/build-packages.sh (BIN=DIR packages the binaries in DIR instead of building);
#   - lintian on both packages: no error and no warning but those the packages override
#     (packaging/deb/lintian-overrides, each with its reason);
#   - systemd-analyze verify on both units, installed as the packages install them (the
#     packages unpacked into a root beside this machine's own units), and the units'
#     exposure (`systemd-analyze security --offline`);
#   - in a fresh container of the local Debian image (podman, scripts/lib/podman.sh; no
#     systemd there, so each service's command is run as the unit runs it, as its user):
#     apt installs both packages; the users, folders, modes and conffiles are checked; the
#     hub runs as feedback-hub on the package's configuration, the agent is enrolled and runs
#     as feedback-agent, a rating posted to it is stored by the hub; a reinstall keeps the
#     keys and an edited conffile; a purge removes the users and the configuration and keeps
#     the data (root's until a reinstall, which serves it again). The units' hardening itself
#     is not exercised: no systemd runs in the container (systemd-analyze checks the files).
#
# It fails, saying what, on any of these; it never passes without installing the packages.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/lib/podman.sh
. "$root/scripts/lib/podman.sh"
out="${OUT:-$root/.build/packages}"
export OUT="$out"

podman_setup
need=()
command -v lintian > /dev/null || need+=(lintian)
command -v systemd-analyze > /dev/null || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]}"
    apt-get update -q > /tmp/packages-apt.log 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" > /tmp/packages-apt.log 2>&1 ||
        { tail -n 20 /tmp/packages-apt.log >&2; exit 1; }
fi

scripts/build-packages.sh
hub_deb=$(ls "$out"/feedback-hub_*.deb)
agent_deb=$(ls "$out"/feedback-agent_*.deb)

echo
echo "== lintian"
# The packages carry their overrides (packaging/deb/lintian-overrides, each with its reason).
lintian --tag-display-limit 0 --display-level '>=warning' --fail-on error,warning "$hub_deb" "$agent_deb" 2>&1 |
    grep -v 'running with root privileges' || true
lintian --fail-on error,warning "$hub_deb" "$agent_deb" > /dev/null 2>&1 || { echo "check-packages: FAILED: lintian (above)" >&2; exit 1; }
echo "lintian: no errors or warnings but the overridden ($(sed -n 's/^PACKAGE: \([a-z-]*\).*/\1/p' packaging/deb/lintian-overrides | sort -u | paste -sd' ' -), zlib in the hub)"

echo
echo "== systemd-analyze verify"
unpacked=$(mktemp -d)
trap 'rm -rf "$unpacked"' EXIT
mkdir -p "$unpacked/lib/systemd/system"
cp -a /lib/systemd/system/. "$unpacked/lib/systemd/system/"
dpkg-deb -x "$hub_deb" "$unpacked"
dpkg-deb -x "$agent_deb" "$unpacked"
for unit in feedback-hub feedback-agent; do
    report=$(systemd-analyze verify --root="$unpacked" "/lib/systemd/system/$unit.service" 2>&1) ||
        { echo "$report" >&2; echo "check-packages: FAILED: systemd-analyze verify $unit.service" >&2; exit 1; }
    [ -z "$report" ] || { echo "$report" >&2; echo "check-packages: FAILED: systemd-analyze verify $unit.service has remarks" >&2; exit 1; }
    exposure=$(systemd-analyze security --offline=true --root="$unpacked" "/lib/systemd/system/$unit.service" 2>/dev/null | tail -n 1 || true)
    echo "$unit.service: verified; ${exposure#→ }"
done

echo
echo "== installing, running as the units' users, reinstalling and purging in a Debian container"
timeout -k 10 600 podman run -i --rm --pull=never -v "$out:/debs:ro" localhost/debian:bookworm bash -s << 'INSIDE' || { echo "check-packages: FAILED: in the container (above)" >&2; exit 1; }
set -euo pipefail
fail() { echo "check-packages: FAILED: $*" >&2; for log in /tmp/hub.log /tmp/agent.log; do [ -s $log ] && { echo "-- $log:"; tail -n 15 $log; } >&2; done; exit 1; }
export DEBIAN_FRONTEND=noninteractive
# A booted machine has an id (systemd-machine-id-setup); this container does not.
tr -d - < /proc/sys/kernel/random/uuid > /etc/machine-id
apt-get update -q > /dev/null
apt-get install -y -q --no-install-recommends curl > /dev/null
echo "-- apt-get install ./feedback-hub_*.deb ./feedback-agent_*.deb"
apt-get install -y -q --no-install-recommends /debs/feedback-hub_*.deb /debs/feedback-agent_*.deb > /tmp/install.log 2>&1 ||
    { cat /tmp/install.log; fail "apt-get install"; }
grep -E '^(feedback-|Setting up feedback)' /tmp/install.log
for package in feedback-hub feedback-agent; do
    [ "$(dpkg-query -W -f='${Status}' "$package")" = "install ok installed" ] || fail "$package is not installed"
done
dpkg -s feedback-hub feedback-agent | grep -E '^(Package|Version|Depends):'

for user in feedback-hub feedback-agent; do
    getent passwd "$user" | grep -q ":/var/lib/$user:/usr/sbin/nologin$" || fail "$user: not a system user with home /var/lib/$user and no shell: $(getent passwd "$user")"
    [ "$(stat -c '%U %a' /var/lib/$user)" = "$user 700" ] || fail "/var/lib/$user is $(stat -c '%U %a' /var/lib/$user)"
    dpkg-query -W -f='${Conffiles}\n' "$user" | grep -q "/etc/$user/" || fail "$user has no conffile under /etc/$user"
done
for key in hub-key.pem feedback.sqlite; do
    [ "$(stat -c '%U %a' /var/lib/feedback-hub/$key)" = "feedback-hub 600" ] || fail "/var/lib/feedback-hub/$key is $(stat -c '%U %a' /var/lib/feedback-hub/$key)"
done
[ "$(stat -c '%U %a' /var/lib/feedback-agent/agent.json)" = "feedback-agent 600" ] || fail "agent.json is $(stat -c '%U %a' /var/lib/feedback-agent/agent.json)"
[ "$(stat -c '%U %a' /var/lib/feedback-hub-ca /var/lib/feedback-hub-ca/ca-key.pem | paste -sd' ')" = "root 700 root 600" ] ||
    fail "the CA's key is not root's alone: $(stat -c '%n %U %a' /var/lib/feedback-hub-ca /var/lib/feedback-hub-ca/ca-key.pem)"
! setpriv --reuid=feedback-hub --regid=feedback-hub --init-groups cat /var/lib/feedback-hub-ca/ca-key.pem > /dev/null 2>&1 ||
    fail "the hub's user can read the CA's key"
# The hub's unit is enabled on install, the agent's is not (it is not configured yet).
[ -L /etc/systemd/system/multi-user.target.wants/feedback-hub.service ] || fail "feedback-hub.service is not enabled"
[ ! -e /etc/systemd/system/multi-user.target.wants/feedback-agent.service ] || fail "feedback-agent.service was enabled before it is configured"
echo "users, folders (0700), keys (0600; the CA's key root's alone), conffiles, units (hub enabled, agent not): ok"

# As the units run them (ExecStart, User=, Group=), without systemd: setpriv execs the
# command as the user, so $! is the service itself.
as() { local user=$1; shift; setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"; }
# owner PID: the user a process runs as (its real uid; /proc/PID itself is root's once it changed uid).
owner() { getent passwd "$(awk '/^Uid:/ {print $2}' "/proc/$1/status")" | cut -d: -f1; }
cd /
setpriv --reuid=feedback-hub --regid=feedback-hub --init-groups -- /usr/bin/feedback-hub serve --config /etc/feedback-hub/hub.yaml > /tmp/hub.log 2>&1 &
hub=$!
for _ in $(seq 1 100); do curl -fs http://127.0.0.1:7080/readyz > /dev/null && break; sleep 0.2; done
curl -fs http://127.0.0.1:7080/readyz > /dev/null || fail "the hub (as feedback-hub) is not ready"
[ "$(owner $hub)" = feedback-hub ] || fail "the hub runs as $(owner $hub)"
echo "hub running as $(owner $hub) on the package's configuration (hubId: machine)"

cp /var/lib/feedback-hub/ca.pem /etc/feedback-agent/ca.pem
sed -i 's/^hubs: .*/hubs: ["127.0.0.1:7443"]/' /etc/feedback-agent/agent.yaml
as feedback-hub feedback-hub agents token --config /etc/feedback-hub/hub.yaml --site branch-7 |
    as feedback-agent feedback-agent enroll --identity /var/lib/feedback-agent/agent.json \
        --hub 127.0.0.1:7443 --ca /etc/feedback-agent/ca.pem --token-file - || fail "enrollment"
setpriv --reuid=feedback-agent --regid=feedback-agent --init-groups -- /usr/bin/feedback-agent run --config /etc/feedback-agent/agent.yaml > /tmp/agent.log 2>&1 &
agent=$!
for _ in $(seq 1 100); do curl -fs http://127.0.0.1:8088/healthz > /dev/null && break; sleep 0.2; done
curl -fsS -H 'Content-Type: application/json' -d '{"source":"api","scale":"nps","score":2,"site":"branch-7"}' \
    http://127.0.0.1:8088/v1/feedback > /dev/null || fail "the agent (as feedback-agent) did not take a rating"
for _ in $(seq 1 100); do
    as feedback-hub feedback-hub report --config /etc/feedback-hub/hub.yaml 2> /dev/null | grep -q '^1 ratings stored' && break
    sleep 0.2
done
as feedback-hub feedback-hub report --config /etc/feedback-hub/hub.yaml | grep -q '^1 ratings stored' ||
    fail "the rating did not reach the hub's store"
[ "$(owner $agent)" = feedback-agent ] || fail "the agent runs as $(owner $agent)"
echo "a rating posted to the agent (as $(owner $agent)) is in the hub's store"
kill -TERM $agent $hub
wait $agent || fail "the agent exited $? on SIGTERM"
wait $hub || fail "the hub exited $? on SIGTERM"
[ "$(stat -c '%U' /var/lib/feedback-agent/spool)" = feedback-agent ] || fail "the spool is not the agent's"

sum=$(sha256sum /var/lib/feedback-hub-ca/ca-key.pem /var/lib/feedback-hub/hub-key.pem /var/lib/feedback-agent/agent.json)
echo "# edited by the operator" >> /etc/feedback-hub/hub.yaml
apt-get install -y -q --reinstall /debs/feedback-hub_*.deb /debs/feedback-agent_*.deb > /dev/null 2>&1 || fail "reinstall"
[ "$(sha256sum /var/lib/feedback-hub-ca/ca-key.pem /var/lib/feedback-hub/hub-key.pem /var/lib/feedback-agent/agent.json)" = "$sum" ] || fail "a reinstall replaced the keys"
grep -q "edited by the operator" /etc/feedback-hub/hub.yaml || fail "a reinstall replaced the edited conffile"
echo "reinstall: keys and the edited conffile kept"

apt-get purge -y -q feedback-hub feedback-agent > /dev/null 2>&1 || fail "purge"
for user in feedback-hub feedback-agent; do
    ! getent passwd "$user" > /dev/null || fail "purge left the user $user"
    [ ! -e /etc/$user/${user#feedback-}.yaml ] || fail "purge left /etc/$user"
done
[ -s /var/lib/feedback-hub/feedback.sqlite ] && [ -s /var/lib/feedback-hub-ca/ca-key.pem ] && [ -s /var/lib/feedback-agent/agent.json ] ||
    fail "purge removed data"
[ "$(stat -c %U /var/lib/feedback-hub/hub-key.pem /var/lib/feedback-agent/agent.json | sort -u)" = root ] ||
    fail "purge left the data to the freed user ids: $(stat -c '%n %U' /var/lib/feedback-hub/hub-key.pem /var/lib/feedback-agent/agent.json)"
! getent group feedback-hub > /dev/null || fail "purge left the group feedback-hub"
echo "purge: users, groups and configuration gone; /var/lib/feedback-hub and /var/lib/feedback-agent kept, now root's"

# A reinstall after the purge: new users, the kept data theirs again, the same CA, the ratings still there.
apt-get install -y -q /debs/feedback-hub_*.deb > /tmp/install.log 2>&1 || { cat /tmp/install.log; fail "install after purge"; }
grep -q "made a CA" /tmp/install.log && fail "the install after a purge made a new CA"
[ "$(sha256sum /var/lib/feedback-hub-ca/ca-key.pem)" = "$(echo "$sum" | grep ca-key.pem)" ] || fail "the CA's key changed"
setpriv --reuid=feedback-hub --regid=feedback-hub --init-groups -- /usr/bin/feedback-hub serve --config /etc/feedback-hub/hub.yaml > /tmp/hub.log 2>&1 &
hub=$!
for _ in $(seq 1 100); do curl -fs http://127.0.0.1:7080/readyz > /dev/null && break; sleep 0.2; done
curl -fs http://127.0.0.1:7080/readyz > /dev/null || fail "the hub does not start after purge and reinstall"
as feedback-hub feedback-hub report --config /etc/feedback-hub/hub.yaml | grep -q '^1 ratings stored' || fail "the rating is gone after purge and reinstall"
kill -TERM $hub
wait $hub || fail "the hub exited $? on SIGTERM"
echo "reinstall after purge: the kept keys and ratings serve again under the new user"
INSIDE
echo "check-packages: ok"
