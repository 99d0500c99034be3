#!/usr/bin/env bash
# The first command of the README: installs what is missing, builds, and shows the system
# working on its embedded defaults.
#
# Today (issue 2) that is the wire protocol end to end: an agent identity is made, sample
# ratings from a kiosk, a product popup and a call centre are sealed into one signed, zstd
# batch frame, and the frame is opened as a hub opens it. Then a tampered copy and a batch
# checked against the wrong agent's key are shown being refused.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

need=()
command -v pkg-config >/dev/null || need+=(pkg-config)
[ -f /usr/include/zstd.h ] || need+=(libzstd-dev)
[ -f /usr/include/sqlite3.h ] || need+=(libsqlite3-dev)
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
fi

echo "== building"
swift build --product feedback-agent
swift build --product feedback-hub
bin="$(swift build --show-bin-path)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo
echo "== an agent identity"
"$bin/feedback-agent" keygen --out "$work/agent.json" | tee "$work/keygen.txt"
public_key="$(sed -n 's/^public key: *//p' "$work/keygen.txt")"
"$bin/feedback-agent" keygen --out "$work/other.json" > "$work/other.txt"
other_key="$(sed -n 's/^public key: *//p' "$work/other.txt")"

cat > "$work/ratings.jsonl" <<'JSON'
{"source":"kiosk","scale":"smiley","score":4,"site":"branch-042","channel":"kiosk","subject":"till-3","survey":"smiley-exit"}
{"source":"kiosk","scale":"smiley","score":1,"site":"branch-042","channel":"kiosk","subject":"till-3","survey":"smiley-exit"}
{"source":"kiosk","scale":"smiley","score":3,"site":"branch-017","channel":"kiosk","subject":"till-1","survey":"smiley-exit"}
{"source":"popup","scale":"nps","score":10,"site":"web-eu","channel":"app","subject":"checkout","topic":"billing","survey":"nps-q4","customer":"cust-10021"}
{"source":"popup","scale":"nps","score":3,"site":"web-eu","channel":"app","subject":"checkout","topic":"refund","survey":"nps-q4","customer":"cust-10022","comment":"Refund still missing after two weeks."}
{"source":"call","scale":"csat","score":5,"site":"cc-leeds","channel":"phone","subject":"agent-417","topic":"general","survey":"post-call"}
{"source":"call","scale":"csat","score":2,"site":"cc-leeds","channel":"phone","subject":"queue-billing","topic":"billing","survey":"post-call","customer":"+44-113-555-0199"}
JSON

echo
echo "== sealing 7 ratings into batch 1"
"$bin/feedback-agent" seal --identity "$work/agent.json" --records "$work/ratings.jsonl" --sequence 1 --out "$work/batch.frame"

echo
echo "== opening it as a hub would (limits, signature, capped zstd, every record validated)"
"$bin/feedback-hub" inspect "$work/batch.frame" --public-key "$public_key" --records

echo
echo "== a copy with one payload byte changed"
cp "$work/batch.frame" "$work/tampered.frame"
size=$(stat -c %s "$work/tampered.frame")
printf '\xff' | dd of="$work/tampered.frame" bs=1 seek=$((size - 70)) conv=notrunc status=none
if "$bin/feedback-hub" inspect "$work/tampered.frame" --public-key "$public_key"; then
    echo "demo: the tampered batch was accepted" >&2
    exit 1
fi

echo
echo "== the genuine batch checked against another agent's key"
if "$bin/feedback-hub" inspect "$work/batch.frame" --public-key "$other_key"; then
    echo "demo: a batch opened under the wrong key" >&2
    exit 1
fi

echo
echo "demo: OK: the genuine batch opened with all 7 ratings (3 negative); the tampered and mis-keyed ones were refused."
