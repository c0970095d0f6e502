#!/usr/bin/env bash
# bidsad on a SLURM cluster with Singularity/Apptainer: one array task per participant, all writing to
# one shared out_dir, then one group-level job on a GPU node that starts when every task succeeded.
#
# Usage, on the login node (edit the settings below or set them in the environment):
#   BIDS_DIR=/data/ds OUT_DIR=/scratch/ds-bidsad SIF=/images/bidsad.sif bash bidsad_slurm.sh
# The script then submits itself twice: "participant" (the array) and "group" (afterok dependency).
# The SIF is an Apptainer/Singularity image made from the container image's archive (README.md, "Containers
# and clusters"): podman save -o bidsad.tar bidsad:<version> (or docker save), then
# apptainer build bidsad.sif docker-archive://bidsad.tar. For a GPU group level, SIF_GROUP names the image
# of the cuda flavour (docker build --build-arg TF_FLAVOUR=cuda); by default the group job uses SIF too.
#
# Shared files in out_dir: dataset_description.json and .bidsignore are written once, under a file
# lock (fcntl.flock on out_dir/.bidsad.lock), so concurrent tasks are safe on a local or NFS file system;
# on Lustre the file system must be mounted with the flock option. Every other output is per participant
# (sub-<label>/, sub-<label>.html) or per run (logs/config-<level>-<run>.toml). Each task has its own
# nipype work directory (WORK_DIR/sub-<label>): rerun a failed task and it resumes there.
set -euo pipefail

# --- settings ---------------------------------------------------------------------------------------
BIDS_DIR=${BIDS_DIR:?set BIDS_DIR to the BIDS dataset root}
OUT_DIR=${OUT_DIR:?set OUT_DIR to the output folder (outside BIDS_DIR)}
SIF=${SIF:?set SIF to the image, built with: apptainer build bidsad.sif docker-archive://bidsad.tar}
SIF_GROUP=${SIF_GROUP:-$SIF}             # the cuda flavour's SIF for GPU nodes, if you built one
WORK_DIR=${WORK_DIR:-${OUT_DIR%/}-work}
CONTAINER=${CONTAINER:-apptainer}        # or singularity
PRESET=${PRESET:-paper}                  # same preset at both levels
CPUS=${CPUS:-4}                          # per participant task
MEM_GB=${MEM_GB:-16}                     # per participant task
TIME_PARTICIPANT=${TIME_PARTICIPANT:-04:00:00}
MAX_PARALLEL=${MAX_PARALLEL:-20}         # array tasks running at once
GPU_GRES=${GPU_GRES:-gpu:1}
TIME_GROUP=${TIME_GROUP:-24:00:00}
GROUP_MEM_GB=${GROUP_MEM_GB:-64}
EPOCHS=${EPOCHS:-20}
FOLDS=${FOLDS:-5}
SEED=${SEED:-0}
PARTICIPANTS_FILE=${PARTICIPANTS_FILE:-$WORK_DIR/participants.txt}
export BIDS_DIR OUT_DIR SIF SIF_GROUP WORK_DIR CONTAINER PRESET CPUS MEM_GB GROUP_MEM_GB EPOCHS FOLDS SEED PARTICIPANTS_FILE

# The container sees the data at fixed paths: input read-only, outputs and work read-write.
binds=(-B "$BIDS_DIR:/data:ro" -B "$OUT_DIR:/out" -B "$WORK_DIR:/work")

submit() {
    local image
    for image in "$SIF" "$SIF_GROUP"; do
        if [[ "$image" != *://* && ! -f "$image" ]]; then
            echo "bidsad_slurm.sh: no image at $image; build it: apptainer build bidsad.sif docker-archive://bidsad.tar" >&2
            exit 2
        fi
    done
    mkdir -p "$OUT_DIR" "$WORK_DIR" "$WORK_DIR/slurm"
    find "$BIDS_DIR" -mindepth 1 -maxdepth 1 -type d -name 'sub-*' -printf '%f\n' | sed 's/^sub-//' | sort \
        > "$PARTICIPANTS_FILE"
    local count
    count=$(wc -l < "$PARTICIPANTS_FILE")
    if [[ "$count" -eq 0 ]]; then
        echo "bidsad_slurm.sh: no sub-* folders in $BIDS_DIR" >&2
        exit 2
    fi
    local script array_id group_id
    script=$(readlink -f "${BASH_SOURCE[0]}")
    array_id=$(sbatch --parsable --job-name=bidsad-participant --array="1-${count}%${MAX_PARALLEL}" \
        --cpus-per-task="$CPUS" --mem="${MEM_GB}G" --time="$TIME_PARTICIPANT" \
        --output="$WORK_DIR/slurm/participant-%A_%a.out" --export=ALL "$script" participant)
    array_id=${array_id%%;*}
    group_id=$(sbatch --parsable --job-name=bidsad-group --dependency="afterok:${array_id}" \
        --gres="$GPU_GRES" --cpus-per-task="$CPUS" --mem="${GROUP_MEM_GB}G" --time="$TIME_GROUP" \
        --output="$WORK_DIR/slurm/group-%j.out" --export=ALL "$script" group)
    echo "Submitted $count participant task(s) as job $array_id and the group level as job ${group_id%%;*}."
}

participant() {
    local label
    label=$(sed -n "${SLURM_ARRAY_TASK_ID:?run as a SLURM array task}p" "$PARTICIPANTS_FILE")
    mkdir -p "$WORK_DIR/sub-$label"
    local bidsad_args=(
        /data /out participant
        --participant-label "$label"
        -w "/work/sub-$label"
        --nprocs "${SLURM_CPUS_PER_TASK:-$CPUS}"
        --omp-nthreads "${SLURM_CPUS_PER_TASK:-$CPUS}"
        --mem "${MEM_GB}G"
        --preset "$PRESET"
        --random-seed "$SEED"
    )
    "$CONTAINER" run --cleanenv "${binds[@]}" "$SIF" "${bidsad_args[@]}"
}

group() {
    # --nv exposes the node's NVIDIA driver and GPUs to TensorFlow inside the container.
    local bidsad_args=(
        /data /out group
        -w /work/group
        --preset "$PRESET"
        --epochs "$EPOCHS"
        --folds "$FOLDS"
        --random-seed "$SEED"
    )
    mkdir -p "$WORK_DIR/group"
    "$CONTAINER" run --nv --cleanenv "${binds[@]}" "$SIF_GROUP" "${bidsad_args[@]}"
}

case "${1:-submit}" in
    submit) submit ;;
    participant) participant ;;
    group) group ;;
    *) echo "usage: bash bidsad_slurm.sh [submit|participant|group]" >&2; exit 2 ;;
esac
