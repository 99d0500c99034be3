# shellcheck shell=bash
# Rootful podman on this kind of machine (docs/OPERATIONS.md#containers): sourced by
# scripts/build-images.sh, scripts/check-containers.sh and scripts/check-packages.sh.
#
#   podman_setup    as root (rootful podman): installs podman and what it needs (Debian
#                   packages) when missing, writes /etc/containers/containers.conf for
#                   sandboxes like this one when the machine has none (runc, cgroupfs, no
#                   journald, lower default ulimits, netavark), and makes the local base image
#                   localhost/debian:bookworm with debootstrap when it is missing (no image
#                   registry is reachable here), its apt sources the machine's mirror with
#                   bookworm-updates and the security archive; it is tagged
#                   docker.io/library/debian:bookworm, the name FROM debian:bookworm resolves
#                   to, unless an image of that name is already there.
#
# podman_setup fails, saying why, when podman cannot run; it never lets a check pass without it.

# The Debian mirror apt already uses (deb822 or one-line sources), for debootstrap.
_podman_mirror() {
    local uri
    uri=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2> /dev/null | grep -v security | head -n 1)
    [ -n "$uri" ] || uri=$(sed -n 's/^deb \(\[[^]]*\] \)\?\(http[^ ]*\) bookworm .*/\2/p' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2> /dev/null | head -n 1)
    echo "${uri:-http://deb.debian.org/debian}"
}

# The security archive apt already uses, for the base image's sources.
_podman_security_mirror() {
    local uri
    uri=$(sed -n 's/^URIs: *\([^ ]*security[^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2> /dev/null | head -n 1)
    [ -n "$uri" ] || uri=$(sed -n 's/^deb \(\[[^]]*\] \)\?\(http[^ ]*security[^ ]*\) .*/\2/p' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2> /dev/null | head -n 1)
    echo "${uri:-http://deb.debian.org/debian-security}"
}

podman_setup() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "podman: run this as root (rootful podman; the images and containers are root's)" >&2
        return 1
    fi
    local need=() tool
    for tool in podman buildah runc debootstrap; do
        command -v "$tool" > /dev/null || need+=("$tool")
    done
    [ -x /usr/bin/newuidmap ] || need+=(uidmap)
    command -v fuse-overlayfs > /dev/null || need+=(fuse-overlayfs)
    command -v slirp4netns > /dev/null || need+=(slirp4netns)
    # netavark with aardvark-dns: container networks in which containers find each other by name.
    [ -x /usr/lib/podman/netavark ] || need+=(netavark)
    [ -x /usr/lib/podman/aardvark-dns ] || need+=(aardvark-dns)
    command -v iptables > /dev/null || need+=(iptables)
    if [ ${#need[@]} -gt 0 ]; then
        echo "== installing ${need[*]}"
        apt-get update -q > /tmp/podman-apt.log 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" > /tmp/podman-apt.log 2>&1 ||
            { tail -n 20 /tmp/podman-apt.log >&2; echo "podman: could not install ${need[*]}" >&2; return 1; }
    fi
    if [ ! -f /etc/containers/containers.conf ]; then
        # crun refuses the hybrid cgroups of this sandbox, and the default ulimits exceed what
        # it allows; no journald or systemd here.
        mkdir -p /etc/containers
        cat > /etc/containers/containers.conf << 'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "netavark"
CONF
    fi
    if ! podman info > /tmp/podman-info.log 2>&1; then
        tail -n 20 /tmp/podman-info.log >&2
        echo "podman: \`podman info\` fails here: containers cannot run on this machine" >&2
        return 1
    fi
    if ! podman image exists localhost/debian:bookworm; then
        local root mirror
        mirror=$(_podman_mirror)
        root=$(mktemp -d /tmp/debian-base.XXXXXX)
        echo "== the base image localhost/debian:bookworm: debootstrap --variant=minbase bookworm from $mirror (about a minute)"
        if ! debootstrap --variant=minbase bookworm "$root" "$mirror" > /tmp/debootstrap.log 2>&1; then
            tail -n 20 /tmp/debootstrap.log >&2
            rm -rf "$root"
            echo "podman: debootstrap failed (see /tmp/debootstrap.log)" >&2
            return 1
        fi
        # apt in images built from it uses the same mirror, with the updates and the security archive.
        local security
        security=$(_podman_security_mirror)
        printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' "$mirror" "$mirror" "$security" |
            tee "$root/etc/apt/sources.list" > /dev/null
        rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
        tar -C "$root" -c . | podman import - localhost/debian:bookworm > /dev/null ||
            { rm -rf "$root"; echo "podman: podman import of the base image failed" >&2; return 1; }
        rm -rf "$root"
    fi
    if ! podman image exists docker.io/library/debian:bookworm; then
        podman tag localhost/debian:bookworm docker.io/library/debian:bookworm
    fi
}
