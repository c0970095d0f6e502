#!/usr/bin/env bash
# Build the container image from the Dockerfile and run the demo inside it, with no Docker daemon and no
# image registry (Debian 12, as root; .ci/run calls it after the tests):
#   1. installs buildah, podman, runc and debootstrap with apt-get when they are missing;
#   2. makes the Dockerfile's base, debian:bookworm-slim, locally (debootstrap + podman import), unless present;
#   3. builds the image (buildah bud --pull=never), with the host's CA bundle ($PIP_CERT) and wheel folder
#      ($PIP_FIND_LINKS, e.g. holding the CPU-only torch wheel) mounted for the build only;
#   4. runs, with a read-only root, a tmpfs /tmp, no network, a random non-root UID and bids_dir read-only:
#      --version, then the demo's participant and group levels (the options of .circleci/demo_outputs.py);
#   5. compares the output file list with .circleci/demo_outputs.txt, prints the image size and the times.
# Environment: IMAGE (default bidsad:ci), TF_FLAVOUR (cpu), KEEP_DIR (keep the demo's outputs there),
# BUILDAH_LAYERS=true (cache the build's layers between runs; the default builds from scratch). The image is
# built in Docker's format (--format docker), which keeps the Dockerfile's SHELL (bash, pipefail).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-bidsad:ci}
BASE=debian:bookworm-slim
TF_FLAVOUR=${TF_FLAVOUR:-cpu}
started=$SECONDS
times=()
step() { times+=("$(printf '%-22s %5d s' "$1" "$((SECONDS - $2))")"); }
say() { echo "container.sh: $*" >&2; }

# --- 1. tools ------------------------------------------------------------------------------------------
missing=()
for tool in buildah podman runc debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        say "missing ${missing[*]}: install them (Debian: apt-get install buildah podman runc debootstrap) or run as root"
        exit 2
    fi
    t=$SECONDS
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    step "install tools" "$t"
fi
# podman's default runtime (crun) and default ulimits fail on hosts with hybrid cgroups: runc, no ulimits.
conf=/etc/containers/containers.conf
if ! grep -qs '^[[:space:]]*default_ulimits' "$conf"; then
    mkdir -p "$(dirname "$conf")"
    if grep -qs '^\[containers\]' "$conf"; then
        sed -i 's/^\[containers\]/&\ndefault_ulimits = []/' "$conf"
    else
        printf '[containers]\ndefault_ulimits = []\n' >> "$conf"
    fi
    say "wrote default_ulimits = [] to $conf"
fi
podman=(podman --runtime runc)

# --- 2. the base image ---------------------------------------------------------------------------------
if ! podman image exists "$BASE"; then
    t=$SECONDS
    mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*debian\/*\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null \
             | head -n 1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    rootfs=$(mktemp -d /var/tmp/bidsad-base.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
    # as Debian's slim images: no package lists or caches, documentation, manuals or translations
    find "$rootfs"/var/lib/apt/lists "$rootfs"/var/cache/apt -type f -delete
    rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
    tar -C "$rootfs" -c . | podman import - "$BASE" >/dev/null
    rm -rf "$rootfs"
    step "base (debootstrap)" "$t"
fi

# --- 3. build ------------------------------------------------------------------------------------------
build=(buildah bud --isolation chroot --pull=never --format docker -t "$IMAGE" -f Dockerfile
       --build-arg TF_FLAVOUR="$TF_FLAVOUR"
       --build-arg VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' bidsad/__init__.py)"
       --build-arg VCS_REF="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
       --build-arg BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)")
if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then   # the host's CA bundle, for the build only
    build+=(-v "$(readlink -f "$PIP_CERT"):/run/host-ca.crt:ro" --build-arg PIP_CERT=/run/host-ca.crt)
fi
if [ -n "${PIP_FIND_LINKS:-}" ] && [ -d "$PIP_FIND_LINKS" ]; then   # a local wheel folder
    build+=(-v "$(readlink -f "$PIP_FIND_LINKS"):/run/wheels:ro" --build-arg PIP_FIND_LINKS=/run/wheels)
    torch=$(sed -n 's/^torch==//p' .ci/constraints.txt)
    if compgen -G "$PIP_FIND_LINKS/torch-$torch+cpu-*.whl" >/dev/null; then
        build+=(--build-arg TORCH_INDEX_URL=)   # the CPU-only torch wheel comes from that folder
    fi
fi
previous=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
t=$SECONDS
"${build[@]}" .
step "build" "$t"
if [ -n "$previous" ] && [ "$previous" != "$(podman image inspect --format '{{.Id}}' "$IMAGE")" ]; then
    podman rmi "$previous" >/dev/null 2>&1 || true   # the previous build, now untagged
fi
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")

# --- 4. run: read-only root, tmpfs /tmp, no network, random UID, bids_dir read-only -----------------------
uid=$((20000 + RANDOM % 40000))
demo=${KEEP_DIR:-$(mktemp -d /var/tmp/bidsad-demo.XXXXXX)}
mkdir -p "$demo/out" "$demo/work"
chown -R "$uid:$uid" "$demo/out" "$demo/work"
run=("${podman[@]}" run --rm --read-only --tmpfs /tmp --network none -u "$uid:$uid"
     -v "$PWD/tests/data/bids-real-mini:/data:ro" -v "$demo/out:/out" -v "$demo/work:/work" "$IMAGE")
version=$("${run[@]}" --version)
expected="bidsad $(sed -n 's/^__version__ = "\(.*\)"/\1/p' bidsad/__init__.py)"
if [ "$version" != "$expected" ]; then
    say "--version printed '$version', expected '$expected'"
    exit 1
fi
for level in participant group; do
    read -r -a options < <(python3 -c "import runpy, sys; m = runpy.run_path('.circleci/demo_outputs.py'); \
print(' '.join(m['DEMO_OPTIONS'][sys.argv[1]]))" "$level")
    t=$SECONDS
    "${run[@]}" /data /out "$level" -w /work "${options[@]}"
    step "demo $level" "$t"
done

# --- 5. the output list, size and times ------------------------------------------------------------------
python3 .circleci/demo_outputs.py list "$demo/out" > "$demo/outputs.txt"
if ! diff -u .circleci/demo_outputs.txt "$demo/outputs.txt"; then
    say "the demo's outputs inside the image differ from .circleci/demo_outputs.txt (diff above; outputs in $demo)"
    exit 1
fi
echo "container.sh: $version, image $IMAGE (TF_FLAVOUR=$TF_FLAVOUR) $(awk -v b="$size" 'BEGIN {printf "%.2f GB", b / 1e9}'),"\
     "demo as UID $uid: $(wc -l < "$demo/outputs.txt") outputs, list equal to .circleci/demo_outputs.txt"
printf 'container.sh: %s\n' "${times[@]}"
step "total" "$started"
printf 'container.sh: %s (load: %s)\n' "${times[-1]}" "$(cut -d' ' -f1-3 /proc/loadavg)"
if [ -z "${KEEP_DIR:-}" ]; then
    rm -rf "$demo"
fi
