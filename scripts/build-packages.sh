#!/usr/bin/env bash
# Builds the Debian packages feedback-hub and feedback-agent (docs/OPERATIONS.md#debian-package)
# with dpkg-deb, from release binaries linked with the static Swift standard library:
#
#   scripts/build-packages.sh              builds the binaries (swift build -c release), then the packages
#   BIN=DIR scripts/build-packages.sh      packages the binaries already in DIR
#
# The packages land in $OUT (default .build/packages): feedback-hub_VERSION_ARCH.deb and
# feedback-agent_VERSION_ARCH.deb, VERSION being the agent's softwareVersion. Each holds its
# binary (stripped), a systemd unit, a configuration under /etc (a conffile), maintainer
# scripts that make and remove its system user without touching its data, and its docs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${OUT:-$root/.build/packages}"
# shellcheck source=scripts/lib/release.sh
. "$root/scripts/lib/release.sh"
version=$(release_version)
arch=$(dpkg --print-architecture)
BIN=$(release_binaries)

# depends PROGRAM: the Debian packages of the shared libraries PROGRAM links (from ldd and
# dpkg -S), with the glibc version the binary was linked against.
depends() {
    local libs=() lib path package
    while read -r lib path; do
        case "$lib" in linux-vdso* | ld-linux* | /lib64/ld-linux*) continue ;; esac
        # dpkg knows the path a package installed, which merged /usr may link elsewhere.
        package=$( (dpkg -S "$path" || dpkg -S "$(readlink -f "$path")") 2> /dev/null | head -n 1 | cut -d: -f1)
        [ -n "$package" ] || { echo "build-packages: no Debian package holds $path ($lib)" >&2; return 1; }
        libs+=("$package")
    done < <(ldd "$1" | awk '$2 == "=>" {print $1, $3}')
    local glibc
    glibc=$(objdump -T "$1" | sed -n 's/.*GLIBC_\([0-9.]*\).*/\1/p' | sort -V | tail -n 1)
    printf '%s\n' "${libs[@]}" | sort -u | sed "s/^libc6\$/libc6 (>= $glibc)/" | paste -sd, - | sed 's/,/, /g'
}

# package NAME SUMMARY DESCRIPTION CONFIG
package() {
    local name=$1 summary=$2 description=$3 config=$4
    local stage="$out/stage/$name"
    local doc="$stage/usr/share/doc/$name"
    rm -rf "$stage"
    mkdir -p "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/$name" "$doc"
    install -m 0755 "$BIN/$name" "$stage/usr/bin/$name"
    strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/usr/bin/$name"
    install -m 0644 "packaging/deb/$name/$name.service" "$stage/lib/systemd/system/$name.service"
    install -m 0644 "packaging/deb/$name/$config" "$stage/etc/$name/$config"
    install -m 0644 packaging/deb/copyright "$doc/copyright"
    install -m 0644 "packaging/deb/$name/README.Debian" "$doc/README.Debian"
    printf '%s (%s) stable; urgency=medium\n\n  * Release %s, built from the FeedbackMesh repository.\n\n -- FeedbackMesh <packages@feedbackmesh.invalid>  %s\n' \
        "$name" "$version" "$version" "$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2> /dev/null || date +%s)}")" |
        gzip -9n > "$doc/changelog.gz"
    chmod 0644 "$doc/changelog.gz"
    mkdir -p "$stage/usr/share/lintian/overrides"
    sed "s/PACKAGE/$name/g" packaging/deb/lintian-overrides > "$stage/usr/share/lintian/overrides/$name"
    if [ "$name" = feedback-hub ]; then
        echo "feedback-hub: embedded-library zlib [usr/bin/feedback-hub]" >> "$stage/usr/share/lintian/overrides/$name"
    fi
    chmod 0644 "$stage/usr/share/lintian/overrides/$name"
    if [ "$name" = feedback-hub ]; then
        # The alert rules example `feedback-hub init` writes, for /etc/feedback-hub/alerts.yaml.
        local scratch
        scratch=$(mktemp -d)
        "$BIN/feedback-hub" init "$scratch/hub" > /dev/null
        install -m 0644 "$scratch/hub/alerts.example.yaml" "$doc/alerts.example.yaml"
        rm -rf "$scratch"
    fi
    local script
    for script in postinst prerm postrm; do
        install -m 0755 "packaging/deb/$name/$script" "$stage/DEBIAN/$script"
    done
    echo "/etc/$name/$config" > "$stage/DEBIAN/conffiles"
    local requires
    requires="$(depends "$stage/usr/bin/$name"), adduser"
    cat > "$stage/DEBIAN/control" << CONTROL
Package: $name
Version: $version
Architecture: $arch
Maintainer: FeedbackMesh <packages@feedbackmesh.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: $requires
Section: net
Priority: optional
Description: $summary
$(echo "$description" | fold -s -w 78 | sed 's/ *$//; s/^/ /')
CONTROL
    (cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum > DEBIAN/md5sums)
    chmod 0644 "$stage/DEBIAN/md5sums" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/control"
    dpkg-deb --root-owner-group -Zxz --build "$stage" "$out/${name}_${version}_${arch}.deb" > /dev/null
    echo "$out/${name}_${version}_${arch}.deb: $(du -h "$out/${name}_${version}_${arch}.deb" | cut -f1), Depends: $requires"
}

mkdir -p "$out"
rm -f "$out"/*.deb
package feedback-hub "FeedbackMesh hub: receives, verifies and stores customer ratings" \
    "The hub of FeedbackMesh takes signed, compressed batches of customer ratings from agents and relays over TLS, verifies and deduplicates them, stores them (SQLite, or PostgreSQL shared by several hubs), raises an alert for every negative score, and serves the operations API and dashboard. The package makes a private CA and a server certificate on first install and runs the hub as the system user feedback-hub." \
    hub.yaml
package feedback-agent "FeedbackMesh agent: captures customer ratings and forwards them" \
    "The agent of FeedbackMesh runs on edge hosts (kiosks, product backends, call-centre hosts): it captures each rating from buttons, call logs or its HTTP intake, keeps it durably on disk, batches, compresses and signs it, and forwards it to the hubs directly or through relays. The package makes the agent's key on first install; the service starts once it is configured and enrolled." \
    agent.yaml
rm -rf "$out/stage"
