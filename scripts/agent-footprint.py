#!/usr/bin/env python3
"""Where a running feedback-agent's resident memory goes: the figures behind
docs/BENCHMARKS.md, "Agent footprint". Called by `FOOTPRINT=1 scripts/bench-agent.sh`;
needs root or the agent's own user (it reads /proc/PID/pagemap and writes clear_refs).

    scripts/agent-footprint.py PID BINARY
"""
import bisect
import collections
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

pid, binary = sys.argv[1], os.path.realpath(sys.argv[2])


def status():
    fields = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0])
    return fields


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


size = os.path.getsize(binary)
with tempfile.NamedTemporaryFile() as copy:
    subprocess.run(["strip", "-o", copy.name, binary], check=True)
    stripped = os.path.getsize(copy.name)
print(f"binary: {size / 1048576:.1f} MiB, {stripped / 1048576:.1f} MiB stripped")
libraries = [line.split()[0] for line in subprocess.run(["ldd", binary], capture_output=True, text=True).stdout.splitlines()]
print(f"shared libraries: {len(libraries)} ({' '.join(libraries)})")
now = status()
print(f"idle: VmRSS {mib(now['VmRSS'])}, RssAnon {mib(now['RssAnon'])}, RssFile {mib(now['RssFile'])}")

# Resident KiB per mapped file (or [anon], [heap], [stack]).
mappings = collections.Counter()
current = None
for line in open(f"/proc/{pid}/smaps"):
    parts = line.split()
    if re.match(r"^[0-9a-f]+-[0-9a-f]+$", parts[0]):
        current = parts[5] if len(parts) > 5 else "[anon]"
    elif parts[0] == "Rss:":
        mappings[current] += int(parts[1])
print("resident by mapping:")
for name, kib in mappings.most_common(8):
    print(f"  {mib(kib):>10}  {name}")

# Resident pages of the binary by section, and of its code and read-only data by the module
# of the symbol on the page (Swift symbols name their module; C ones by prefix).
segments = []
for line in subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True).stdout.splitlines():
    parts = line.split()
    if parts and parts[0] == "LOAD":
        segments.append((int(parts[1], 16), int(parts[2], 16), int(parts[4], 16)))
sections = []
for line in subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True).stdout.splitlines():
    match = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)", line)
    if match and int(match.group(2), 16) > 0:
        sections.append((int(match.group(2), 16), int(match.group(3), 16), match.group(1)))
sections.sort()
symbols = []
for line in subprocess.run(["nm", "-n", "-S", "--defined-only", binary], capture_output=True, text=True).stdout.splitlines():
    parts = line.split()
    if len(parts) == 4:
        symbols.append((int(parts[0], 16), parts[3]))
symbols.sort()
starts = [s[0] for s in symbols]
prefixes = [
    ("icudt", "ICU data"), ("CCryptoBoringSSL", "BoringSSL (swift-crypto)"), ("CNIOBoringSSL", "BoringSSL (swift-nio-ssl)"),
    ("_ZN6icu_", "ICU"), ("swift_u", "ICU"), ("_CF", "CoreFoundation"), ("__CF", "CoreFoundation"), ("CF", "CoreFoundation"),
    ("_ZN5swift", "Swift runtime"), ("swift_", "Swift runtime"), ("dispatch_", "libdispatch"), ("_dispatch", "libdispatch"),
]


def module(name):
    if name.startswith(("$sS", "$ss")):
        return "Swift standard library"
    match = re.match(r"\$s(\d+)(\w+)", name)
    if match:
        return match.group(2)[: int(match.group(1))]
    for prefix, owner in prefixes:
        if name.startswith(prefix):
            return owner
    return "other C and C++" if symbols else "(no symbols: stripped)"


by_section = collections.Counter()
by_module = collections.Counter()
with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
    for line in maps:
        parts = line.split()
        if len(parts) < 6 or os.path.realpath(parts[5]) != binary:
            continue
        low, high = (int(x, 16) for x in parts[0].split("-"))
        offset = int(parts[2], 16)
        pagemap.seek(low // 4096 * 8)
        entries = pagemap.read((high - low) // 4096 * 8)
        for index in range(len(entries) // 8):
            if not struct.unpack_from("<Q", entries, index * 8)[0] >> 63:
                continue
            file_offset = offset + index * 4096
            address = next((v + file_offset - o for o, v, n in segments if o <= file_offset < o + n), None)
            if address is None:
                continue
            at = bisect.bisect_right([s[0] for s in sections], address) - 1
            section = sections[at][2] if at >= 0 and address < sections[at][0] + sections[at][1] else "(other)"
            by_section[section] += 4
            if section in (".text", ".rodata"):
                at = bisect.bisect_right(starts, address + 2048) - 1
                by_module[(section, module(symbols[at][1]) if at >= 0 else "?")] += 4
print("resident pages of the binary by section:")
for section, kib in by_section.most_common(6):
    print(f"  {mib(kib):>10}  {section}")
print("code and read-only data by module:")
for (section, owner), kib in by_module.most_common(16):
    print(f"  {mib(kib):>10}  {section:8} {owner}")

# What the idle process touches again: the accessed bits are cleared, then read 10 s later.
with open(f"/proc/{pid}/clear_refs", "w") as clear:
    clear.write("1")
time.sleep(10)
referenced = sum(int(line.split()[1]) for line in open(f"/proc/{pid}/smaps_rollup") if line.startswith("Referenced:"))
print(f"touched in 10 s idle: {mib(referenced)}")
