#!/usr/bin/env bash
# Fuzzes the Wire frame and batch decoders with libFuzzer and AddressSanitizer.
#
#   scripts/fuzz-wire.sh [SECONDS]    # each target runs SECONDS (default 60)
#
# Builds Fuzz/ into .build-fuzz (release, -sanitize=fuzzer,address), seeds the corpora
# from Tests/WireTests/Fixtures, and fails if a target crashes, leaks, times out or
# exceeds 2 GiB. Findings are written to .build-fuzz/findings/.
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "fuzz-wire.sh: SECONDS must be a positive whole number, got '$seconds'" >&2
    exit 2
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$root/.build-fuzz"
fixtures="$root/Tests/WireTests/Fixtures"

swift build --package-path "$root/Fuzz" --scratch-path "$scratch" -c release \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library

bin="$(swift build --package-path "$root/Fuzz" --scratch-path "$scratch" -c release --show-bin-path)"
mkdir -p "$scratch/corpus/frames" "$scratch/corpus/batch" "$scratch/findings"

# Seeds: every frame fixture as one stream, and the records behind a zstd-compress mode byte.
for file in "$fixtures"/frame-*.hex; do
    xxd -r -p "$file" > "$scratch/corpus/frames/$(basename "$file" .hex)"
done
for file in "$fixtures"/record-*.hex; do
    { printf '\x01\x00\x01\x00\x00\x00\x00'; xxd -r -p "$file"; } > "$scratch/corpus/batch/$(basename "$file" .hex)"
done

status=0
for target in FuzzFrames:frames FuzzBatch:batch; do
    name="${target%%:*}"
    corpus="${target##*:}"
    echo "== $name for ${seconds}s"
    if ! "$bin/$name" "$scratch/corpus/$corpus" \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="$scratch/findings/$name-" -print_final_stats=1 2>"$scratch/$name.log"; then
        echo "$name FAILED; last lines of $scratch/$name.log:" >&2
        tail -n 40 "$scratch/$name.log" >&2
        status=1
    else
        grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$scratch/$name.log" | sed "s/^/  /"
    fi
done
exit $status
