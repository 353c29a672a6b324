#!/usr/bin/env bash
# Proves that the README's two commands, `bash scripts/demo.sh` and `bash scripts/test.sh`, work
# on a fresh minimal Debian 12: builds a bookworm root with `debootstrap --variant=minbase` from
# the mirror this machine's apt uses (cached as build-fresh/bookworm-minbase.tar), and runs each
# command, as README.md writes it, in its own fresh copy of that root (chroot) on a clean clone of
# the committed HEAD. Prints PASS/FAIL per command and exits 0 only if both pass; exits 0 after
# "check-fresh-machine: skipped: REASON" where it cannot run (not root, no debootstrap, mirror
# unreachable, mounts refused). Logs: build-fresh/{debootstrap,demo,test}.log. Env:
# GSQ_FRESH_REBUILD=1 rebuilds the cached root; GSQ_FRESH_BUDGET_S caps the whole run (default
# 4200 s, so that CI's 90 minutes hold it and scripts/test.sh). About 10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd -P)"
work="$repo/build-fresh"              # gitignored (/build*/)
tarball="$work/bookworm-minbase.tar"
suite=bookworm
commands=("bash scripts/demo.sh" "bash scripts/test.sh")
names=(demo test)
budget="${GSQ_FRESH_BUDGET_S:-4200}"
deadline=$((SECONDS + budget))

say() { echo "check-fresh-machine: $*"; }
skip() { say "skipped: $*"; exit 0; }
die() { say "FAIL: $*" >&2; exit 1; }

# The commands must be lines of README.md's ```sh blocks, verbatim, so a README change breaks this.
readme_lines="$(awk '/^```/ { inside = ($0 == "```sh"); next } inside' README.md)"
for cmd in "${commands[@]}"; do
    grep -qxF -- "$cmd" <<<"$readme_lines" || die "README.md has no \`$cmd\` line in a sh block"
done

[ "$(id -u)" -eq 0 ] || skip "needs root (apt-get, debootstrap, mount, chroot)"

# Mounts live in a private mount namespace where one can be made, so that nothing leaks to the
# host even if this script is killed; the EXIT trap below unmounts them in any case.
if [ -z "${GSQ_FRESH_IN_NS:-}" ] && unshare --mount --propagation private true 2>/dev/null; then
    GSQ_FRESH_IN_NS=1 exec unshare --mount --propagation private \
        bash "$repo/scripts/check-fresh-machine.sh" "$@"
fi

# ---- mounts, cleanup -------------------------------------------------------------------------
mounts_under() {   # mount points at or below $1, deepest first
    awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
        awk '{ print length($0), $0 }' | sort -rn | cut -d' ' -f2-
}
kill_in_root() {   # ends what still runs in chroots at or below $1 (what this script started)
    local p r
    for p in /proc/[0-9]*; do
        r="$(readlink "$p/root" 2>/dev/null)" || continue
        case "$r" in "$1" | "$1"/*) kill -KILL "${p#/proc/}" 2>/dev/null || true ;; esac
    done
}
unmount_under() {
    local m
    [ -d "$1" ] || return 0
    kill_in_root "$1"
    for m in $(mounts_under "$1"); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "could not unmount $m" >&2
    done
}
remove_tree() {    # rm -rf that refuses to cross into a mounted /dev or /proc
    unmount_under "$1"
    [ -z "$(mounts_under "$1")" ] || die "still mounted under $1; not removing it"
    rm -rf --one-file-system "$1"
}
cleanup() { unmount_under "$work"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

phase_names=()
phase_secs=()
phase() { phase_names+=("$1"); phase_secs+=("$2"); }

# ---- this machine's apt: mirror, suites, proxy -----------------------------------------------
# Prints "URI SUITE SIGNED-BY COMPONENTS..." for each enabled deb entry of one-line (.list) and
# deb822 (.sources) files; SIGNED-BY is "-" when the entry names no keyring file.
host_sources() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk '{ sub(/#.*/, "") } $1 == "deb" {
                line = $0; sub(/^[ \t]*deb[ \t]+/, "", line); sb = "-"
                if (line ~ /^\[/) {
                    e = index(line, "]"); opts = substr(line, 2, e - 2); line = substr(line, e + 1)
                    n = split(opts, o, /[ \t]+/)
                    for (i = 1; i <= n; i++)
                        if (o[i] ~ /^signed-by=/) { sb = o[i]; sub(/^signed-by=/, "", sb) }
                }
                n = split(line, w, /[ \t]+/); k = 0
                for (i = 1; i <= n; i++) if (w[i] != "") v[++k] = w[i]
                if (k < 3) next
                printf "%s %s %s", v[1], v[2], sb
                for (i = 3; i <= k; i++) printf " %s", v[i]
                printf "\n"
            }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk 'function flush(   i, j, nu, ns, u, s) {
                if (types ~ /(^| )deb( |$)/ && tolower(enabled) != "no") {
                    nu = split(uris, u, / +/); ns = split(suites, s, / +/)
                    for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
                        if (u[i] != "" && s[j] != "") print u[i], s[j], (sb == "" ? "-" : sb), comps
                }
                types = uris = suites = comps = sb = enabled = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]/ { next }                      # continuation lines (an inline key)
            { key = tolower($1); sub(/:$/, "", key); val = $0; sub(/^[^:]*:[ \t]*/, "", val)
              gsub(/[ \t]+/, " ", val)
              if (key == "types") types = val; else if (key == "uris") uris = val
              else if (key == "suites") suites = val; else if (key == "components") comps = val
              else if (key == "signed-by") sb = (val ~ /^\// ? val : "")
              else if (key == "enabled") enabled = val }
            END { flush() }' "$f"
    done
}
entries="$(host_sources | awk -v s="$suite" '$2 == s || $2 == s "-updates" || $2 == s "-security"')"
if [ -n "$entries" ]; then
    mirror="$(awk -v s="$suite" '$2 == s { print $1; exit }' <<<"$entries")"
else   # this machine is not bookworm: Debian's own mirrors
    mirror=http://deb.debian.org/debian
    entries="$mirror $suite - main
$mirror $suite-updates - main
http://deb.debian.org/debian-security $suite-security - main"
fi
[ -n "$mirror" ] || mirror="$(awk '{ print $1; exit }' <<<"$entries")"
mirror="${mirror%/}"
keyring="$(awk -v m="$mirror" -v s="$suite" \
    '($1 == m || $1 == m "/") && $2 == s { print $3; exit }' <<<"$entries")"
{ [ -n "$keyring" ] && [ "$keyring" != - ] && [ -f "$keyring" ]; } ||
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
say "mirror $mirror ($suite), keyring $keyring"

# apt's proxy reaches debootstrap (wget) through the environment; the chroot's apt gets a copy of
# this machine's proxy and Release-date settings.
eval "$(apt-config shell apt_http_proxy Acquire::http::Proxy apt_https_proxy Acquire::https::Proxy)"
if [ -z "${http_proxy:-}" ] && [ -n "${apt_http_proxy:-}" ]; then
    export http_proxy="$apt_http_proxy"
fi
if [ -z "${https_proxy:-}" ] && [ -n "${apt_https_proxy:-}" ]; then
    export https_proxy="$apt_https_proxy"
fi
apt_net_conf="$(apt-config dump |
    grep -E '^Acquire::(https?|ftp)::Proxy|^Acquire::Check-(Valid-Until|Date) ' |
    grep -v 'Proxy-Auto-Detect' || true)"

# ---- debootstrap, and the mirror ---------------------------------------------------------------
t0=$SECONDS
if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap"
    { apt-get install -y -qq --no-install-recommends debootstrap >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
              debootstrap >/dev/null 2>&1; }; } ||
        skip "debootstrap is not installed and apt-get could not install it"
fi
[ -f "$keyring" ] || skip "no Debian archive keyring ($keyring) to check the mirror with"
mkdir -p "$work"
rm -f "$work/Release"
if ! timeout 60 /usr/lib/apt/apt-helper download-file "$mirror/dists/$suite/Release" \
        "$work/Release" >/dev/null 2>&1; then
    skip "package mirror unreachable ($mirror/dists/$suite/Release)"
fi
rm -f "$work/Release"

# ---- the bare minimal root, cached as a tarball ------------------------------------------------
include=()
case "$mirror" in https:*) include=(--include=ca-certificates) ;; esac
key="debootstrap --variant=minbase${include[*]:+ ${include[*]}} $suite $mirror"
if [ "${GSQ_FRESH_REBUILD:-0}" != 1 ] && [ -f "$tarball" ] &&
        [ "$(cat "$tarball.key" 2>/dev/null)" = "$key" ]; then
    say "reusing the bare root $tarball"
else
    say "$key (log: build-fresh/debootstrap.log)"
    bare="$work/bare"
    remove_tree "$bare"
    rm -f "$tarball" "$tarball.key"
    ok=0
    for attempt in 1 2; do
        if timeout 1200 debootstrap --variant=minbase --keyring="$keyring" "${include[@]}" \
                "$suite" "$bare" "$mirror" >"$work/debootstrap.log" 2>&1; then
            ok=1; break
        fi
        unmount_under "$bare"
        say "debootstrap attempt $attempt failed: $(tail -n 1 "$work/debootstrap.log")"
        remove_tree "$bare"
    done
    if [ "$ok" != 1 ]; then
        tail -n 20 "$work/debootstrap.log" >&2
        if grep -qE "Failed getting release|Couldn't download|Couldn't get|Failed to get" \
                "$work/debootstrap.log"; then
            skip "debootstrap could not download from $mirror (build-fresh/debootstrap.log)"
        fi
        die "debootstrap failed (build-fresh/debootstrap.log)"
    fi
    unmount_under "$bare"
    tar --numeric-owner -C "$bare" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    echo "$key" >"$tarball.key"
    remove_tree "$bare"
fi
phase "bare root (debootstrap)" $((SECONDS - t0))

# ---- one fresh root per command ----------------------------------------------------------------
# One clean clone of the committed HEAD (what a user gets, not this working tree), copied into
# each root so that both commands test the same commit even if HEAD moves meanwhile.
remove_tree "$work/clone"
git -c safe.directory="$repo" clone -q --no-hardlinks "$repo" "$work/clone"
head="$(git -C "$work/clone" rev-parse HEAD)"
mkdir -p "$work/apt-archives/partial"   # .deb downloads, shared by the roots (installs are not)

prepare_root() {   # $1: root directory
    local root="$1" u s sb comps
    remove_tree "$root"
    mkdir -p "$root"
    tar --numeric-owner -C "$root" -xpf "$tarball"
    while read -r u s sb comps; do
        if [ "$sb" != - ] && [ -f "$sb" ]; then
            [ -e "$root$sb" ] || { mkdir -p "$root$(dirname "$sb")"; cp "$sb" "$root$sb"; }
            echo "deb [signed-by=$sb] $u $s $comps"
        else
            echo "deb $u $s $comps"
        fi
    done <<<"$entries" >"$root/etc/apt/sources.list"
    rm -f "$root"/etc/apt/sources.list.d/*
    [ -z "$apt_net_conf" ] || echo "$apt_net_conf" >"$root/etc/apt/apt.conf.d/99host-network"
    rm -f "$root/etc/resolv.conf"
    cp -L /etc/resolv.conf "$root/etc/resolv.conf"
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"   # no services start here
    chmod 755 "$root/usr/sbin/policy-rc.d"
    cp -a "$work/clone" "$root/root/gpusq"
}
mount_root() {
    local root="$1"
    mount -t proc proc "$root/proc" &&
    mount -t sysfs sysfs "$root/sys" &&
    mount --bind /dev "$root/dev" && mount --make-rslave "$root/dev" &&
    mount --bind /dev/pts "$root/dev/pts" &&
    mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm" &&
    mount --bind "$work/apt-archives" "$root/var/cache/apt/archives"
}

results=()
status=0
for i in "${!commands[@]}"; do
    cmd="${commands[$i]}"
    name="${names[$i]}"
    root="$work/$name"
    log="$work/$name.log"
    t0=$SECONDS
    prepare_root "$root"
    if ! mount_root "$root"; then
        unmount_under "$root"
        [ "$i" -eq 0 ] || die "could not mount /proc, /sys and /dev into $root"
        skip "cannot mount /proc, /sys and /dev into a chroot here"
    fi
    phase "$name: fresh root + copy of the clone" $((SECONDS - t0))
    limit=$((deadline - SECONDS))
    [ "$limit" -ge 60 ] || die "no time left for \`$cmd\` within GSQ_FRESH_BUDGET_S=$budget"
    say "running \`$cmd\` in $root/root/gpusq (commit ${head:0:12}, at most ${limit}s," \
        "log: build-fresh/$name.log)"
    envs=(HOME=/root LANG=C.UTF-8 TERM=dumb
          PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
    for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL PIP_EXTRA_INDEX_URL \
             PIP_TRUSTED_HOST PIP_DEFAULT_TIMEOUT; do
        [ -z "${!v:-}" ] || envs+=("$v=${!v}")
    done
    # pip's route to PyPI as the host has it (the ONNX export test installs onnxruntime): the CA
    # bundle it trusts, which a minimal root lacks, under a name of its own
    if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
        cp -L "$PIP_CERT" "$root/etc/host-pip-ca.crt"
        envs+=(PIP_CERT=/etc/host-pip-ca.crt)
    fi
    t0=$SECONDS
    # In the background, so that a signal to this script interrupts `wait` and the EXIT trap
    # ends the chroot's processes (timeout puts them in their own process group).
    (
        set +e
        timeout --kill-after=30 "$limit" chroot "$root" /usr/bin/env -i "${envs[@]}" \
            bash -c "cd /root/gpusq && $cmd" </dev/null 2>&1 | tee "$log"
        exit "${PIPESTATUS[0]}"
    ) &
    rc=0
    wait "$!" || rc=$?
    secs=$((SECONDS - t0))
    phase "$name: \`$cmd\`" "$secs"
    unmount_under "$root"
    if [ "$rc" -eq 0 ]; then
        results+=("PASS: \`$cmd\` on a fresh Debian 12 minbase root (${secs}s)")
    else
        why="exit $rc"
        [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && why="timed out after ${limit}s"
        results+=("FAIL: \`$cmd\` on a fresh Debian 12 minbase root ($why; build-fresh/$name.log)")
        status=1
    fi
done

echo
say "commit $head"
for i in "${!phase_names[@]}"; do
    printf 'check-fresh-machine: %6ss  %s\n' "${phase_secs[$i]}" "${phase_names[$i]}"
done
for r in "${results[@]}"; do say "$r"; done
exit "$status"
