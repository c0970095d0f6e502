# syntax=docker/dockerfile:1
# bidsad container image (BIDS-App). Build with no argument: docker build -t bidsad .
# Use, Apptainer/Singularity and SLURM: README.md, "Containers and clusters". .ci/container.sh builds and runs
# it without a Docker daemon (buildah/podman).
#
# Optional build arguments:
#   BASE_DIGEST      also pin the base by digest (sha256:<64 hex>, the "Digest:" line of
#                    `docker buildx imagetools inspect debian:bookworm-slim`); empty (default): the tag alone.
#   TF_FLAVOUR       cpu (default: tensorflow-cpu; CI, laptops, CPU clusters) or cuda (TensorFlow's CUDA wheels
#                    from PyPI at the pins of .ci/constraints-cuda.txt; GPU nodes with --gpus / apptainer --nv).
#   TORCH_INDEX_URL  index of the CPU-only torch wheel (default: PyTorch's CPU index; PyPI's Linux torch is a
#                    CUDA build of several GB); empty: torch only from a wheel folder named by PIP_FIND_LINKS.
#   PIP_CERT, PIP_FIND_LINKS, PIP_INDEX_URL  pip settings for the build only, naming a CA bundle or a wheel
#                    folder mounted for the build (buildah bud -v, see .ci/container.sh); nothing of them is
#                    copied into the image.
#   VERSION, VCS_REF, BUILD_DATE  OCI labels.
ARG BASE_IMAGE=debian:bookworm-slim
ARG BASE_DIGEST=

# --- runtime: Debian's Python 3.11 -------------------------------------------------------------------
FROM ${BASE_IMAGE}${BASE_DIGEST:+@}${BASE_DIGEST} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Package versions come from the Debian release (bookworm: Python 3.11) with its security updates.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -c "import sys; assert sys.version_info[:2] == (3, 11), sys.version"

# --- builder: the bidsad wheel and a virtual environment with every dependency -------------------------
FROM runtime AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG TF_FLAVOUR=cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_CERT
ARG PIP_FIND_LINKS
ARG PIP_INDEX_URL
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first (a layer that only changes with the pins): torch, the CPU build by name (+cpu); then
# bidsad's requirements (.ci/requirements.py) at the pins of .ci/constraints.txt (and
# .ci/constraints-cuda.txt for cuda).
COPY pyproject.toml ./
COPY .ci/constraints.txt .ci/constraints-cuda.txt .ci/requirements.py .ci/
RUN python3 -m venv /opt/bidsad \
 && torch="torch==$(sed -n 's/^torch==//p' .ci/constraints.txt)+cpu" \
 && if [ -n "$TORCH_INDEX_URL" ]; then source="--index-url=$TORCH_INDEX_URL"; else source=--no-index; fi \
 && /opt/bidsad/bin/pip install --no-deps "$source" "$torch" \
 && if [ "$TF_FLAVOUR" = cuda ]; then cuda=.ci/constraints-cuda.txt; else cuda=/dev/null; fi \
 && python3 .ci/requirements.py "$TF_FLAVOUR" > /tmp/requirements.txt \
 && /opt/bidsad/bin/pip install -c .ci/constraints.txt -c "$cuda" -r /tmp/requirements.txt \
 && /opt/bidsad/bin/python -c "import torch; assert torch.version.cuda is None, torch.__version__"
# Then bidsad's wheel, installed without dependencies, and pip check (cuda: bidsad's tensorflow-cpu
# requirement is the only one left open; TensorFlow's GPU wheel stands in for it).
COPY README.md ./
COPY boilerplate/ boilerplate/
COPY bidsad/ bidsad/
RUN /opt/bidsad/bin/pip wheel --no-deps --wheel-dir /dist . \
 && /opt/bidsad/bin/pip install --no-deps /dist/bidsad-*.whl \
 && { /opt/bidsad/bin/pip check || true; } \
    | { ! grep -v -e "requires tensorflow-cpu, which is not installed" -e "^No broken requirements"; } \
 && if [ "$TF_FLAVOUR" = cpu ]; then /opt/bidsad/bin/pip check; fi
# Left out of the image: C/C++ headers, PyTorch's test binaries, pandas' test suite, pip (about 0.5 GB).
# matplotlib's font list is built here: HOME's cache for runs with a writable HOME, and a seed that bidsad
# copies to <tmp>/bidsad-<uid> when HOME is read-only (BIDSAD_CACHE_SEED).
RUN site=/opt/bidsad/lib/python3.11/site-packages \
 && rm -rf "$site/tensorflow/include" "$site/torch/include" "$site/torch/test" "$site/pandas/tests" \
 && /opt/bidsad/bin/python -m pip uninstall -y -q pip \
 && MPLCONFIGDIR=/opt/bidsad/share/cache-seed/matplotlib /opt/bidsad/bin/python -c "import matplotlib.font_manager" \
 && ls /opt/bidsad/share/cache-seed/matplotlib/fontlist-*.json

# --- final image -----------------------------------------------------------------------------------------
FROM runtime
ARG BASE_IMAGE
ARG BASE_DIGEST
ARG TF_FLAVOUR=cpu
ARG VERSION=unknown
ARG VCS_REF=unknown
ARG BUILD_DATE=unknown
LABEL org.opencontainers.image.title="bidsad" \
      org.opencontainers.image.description="BIDS-App: MRI + resting-state fMRI classifiers for AD / MCI / CN with participant-level evaluation (research use only)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      org.opencontainers.image.base.digest="${BASE_DIGEST}" \
      org.bidsad.tensorflow-flavour="${TF_FLAVOUR}"
COPY --from=builder /opt/bidsad /opt/bidsad
# A non-root user (bidsad, UID/GID 10001). HOME and its caches are writable by any UID (docker run -u,
# Apptainer); with a read-only root, bidsad moves the caches of matplotlib, Keras and nipype to
# <tmp>/bidsad-<uid>, seeded from /opt/bidsad/share/cache-seed.
RUN groupadd --gid 10001 bidsad \
 && useradd --no-log-init --uid 10001 --gid 10001 --create-home --home-dir /home/bidsad --shell /bin/bash bidsad \
 && mkdir -p /home/bidsad/.cache \
 && cp -r /opt/bidsad/share/cache-seed/matplotlib /home/bidsad/.cache/ \
 && chmod 1777 /home/bidsad /home/bidsad/.cache /home/bidsad/.cache/matplotlib \
 && chmod 0644 /home/bidsad/.cache/matplotlib/*
ENV PATH=/opt/bidsad/bin:$PATH \
    HOME=/home/bidsad \
    BIDSAD_CACHE_SEED=/opt/bidsad/share/cache-seed \
    OMP_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg \
    NIPYPE_NO_ET=1 \
    TF_CPP_MIN_LOG_LEVEL=2
# The default work directory (-w ./work) lands in /tmp: a tmpfs under docker run --read-only --tmpfs /tmp.
WORKDIR /tmp
USER 10001:10001
RUN bidsad --version
ENTRYPOINT ["bidsad"]
CMD ["--help"]
