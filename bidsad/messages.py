"""Every user-facing message of bidsad, in one place.

Messages about inputs name the file (relative to the BIDS root) or the argument, say what is
wrong and what to do. Format them with ``str.format`` keyword arguments.
"""

# --- command line --------------------------------------------------------------------------------
PATH_MISSING = "{arg}: path does not exist: {path}"
PATH_NOT_DIR = "{arg}: not a directory: {path}"
NOT_BIDS = (
    "bids_dir: {path} has no dataset_description.json, so it is not a BIDS dataset root. "
    "Point bids_dir at the folder that holds dataset_description.json and the sub-* folders."
)
BIDS_IS_DERIVATIVE = (
    "bids_dir: {path} is a derivatives dataset (dataset_description.json says DatasetType 'derivative'{by}), "
    "not raw data. Give the raw BIDS dataset it was made from (the folder with sub-*/anat/*_T1w.nii[.gz]); "
    "to reuse fMRIPrep's preprocessing add --derivatives fmriprep=PATH."
)
OUT_IS_BIDS = (
    "out_dir: {out} is the same as bids_dir or inside it, outside its derivatives/ folder; bidsad never "
    "writes among the raw data (outputs there could be indexed as raw data). Choose {bids}/derivatives/bidsad "
    "or a folder outside {bids}, e.g. {bids}-derivatives/bidsad."
)
WORK_IN_BIDS = (
    "-w/--work-dir: {work} is inside bids_dir ({bids}); bidsad never writes into the input dataset. "
    "Pass -w with a folder outside it."
)
MEM_ABSURD = (
    "'{value}' means {gb:,.0f} GB, more than {factor}x this machine's memory ({machine:.0f} GB): a unit mistake? "
    "Bare numbers are GB for --mem (as 16 or 16GB) and MB for --mem-mb; write the unit, e.g. 16GB or 16000MB."
)
MEM_BARE = "memory limit '{value}' read as {gb:g} GB (a bare number is {unit} for this option; write 16GB or 16000MB to be explicit)."
MEM_BAD = "cannot read '{value}' as an amount of memory; give GB as a number or with a unit, e.g. 8, 8G, 8000M."
POSITIVE_NUMBER = "must be a number greater than 0, got '{value}'."
AT_LEAST = "must be an integer of at least {minimum}, got '{value}'."
LABEL_EMPTY = "'{value}' is empty after removing the 'sub-' prefix."
EXISTS_NOT_DIR = "{arg}: {path} exists and is not a directory; give a folder."
CANNOT_WRITE = ("cannot write {path}: {why}. out_dir and -w/--work-dir must be folders bidsad can create and write "
                "to; pass other ones.")
CONFIG_VALUE = "--config-file {path}: [{section}] {name} = {value!r}: {why}"
LABELS_MISSING = (
    "--participant-label: participant label(s) not found in {bids}: {labels}. Participants found: {found}. "
    "Labels are case-sensitive; pass them as they appear in the sub-<label> folder names."
)
LABELS_CASE_HINT = " Did you mean {labels}?"
LABEL_NORMALISED = "participant label '{value}' interpreted as '{label}'."
NO_PARTICIPANTS = "bids_dir: no sub-* folders with a T1w image in {bids}."
FILTER_BAD = "--bids-filter-file: {path}: {why}. Expected JSON such as {{\"t1w\": {{\"session\": \"01\"}}, \"bold\": {{\"run\": 1}}}}."
FILTER_QUERY_BAD = "--bids-filter-file: pybids refused the query for '{key}' ({why}). Use BIDS entity names (subject, session, run, acquisition, ...)."
CONFIG_BAD = "--config-file: {why}"
PLUGIN_ARG_BAD = (
    "'{value}' is not KEY=VALUE. Example: --plugin-args n_procs=4 memory_gb=16, or for "
    "SLURM --plugin-args \"sbatch_args=--mem=8G --time=02:00:00\"."
)
PLUGIN_BAD = "--plugin: unknown nipype plugin '{plugin}' (choose from {choices})."
PLUGIN_ARGS_NOT_TABLE = "--config-file: [nipype] plugin_args must be a table of KEY = VALUE, got {value!r}."
ANAT_REGISTRATION_BAD = "--anat-registration: unknown value '{value}' (choose from {choices})."
DERIVATIVES_BAD = (
    "--derivatives: '{value}' is not NAME=PATH with a supported NAME ({names}). "
    "Example: --derivatives fmriprep=/data/derivatives/fmriprep"
)
DERIVATIVES_NOT_DATASET = (
    "--derivatives {name}={path}: no dataset_description.json there, so it is not a derivatives dataset "
    "root. Point it at the folder that holds dataset_description.json and the sub-* folders."
)
VALIDATION_FAILED = (
    "bids_dir: pybids could not index {bids}: {why}. Fix the dataset, or pass --skip-bids-validation "
    "to index files whose names are not valid BIDS."
)

# --- participant level ----------------------------------------------------------------------------
T1W_MISSING = "sub-{label}: no T1w image found; this participant is skipped. Add anat/sub-{label}_T1w.nii[.gz]."
T1W_MISSING_FILTERED = "sub-{label}: no T1w image matches the --bids-filter-file query {query}; this participant is skipped."
T1W_SEVERAL = (
    "sub-{label}: {n} T1w images found; using {used} (earliest session, no acq- entity, lowest run); not used: "
    "{others}. Select another with --bids-filter-file."
)
DATASET_T1W_ONLY = "{bids} has no task-rest BOLD runs: a T1w-only dataset; MRI features and models only."
BOLD_MISSING = "sub-{label}: no usable task-rest BOLD run; MRI features only."
BOLD_TOO_SHORT = (
    "{file}: skipping this BOLD run: {n} volume(s) < minimum {minimum}. Acquire or select a longer run."
)
BOLD_MEMORY = (
    "{file}: reading this BOLD run needs about {need:.1f} GB of memory, more than --mem {mem:g} GB allows; the run "
    "is skipped. Raise --mem, or select shorter runs with --bids-filter-file."
)
JSON_NOT_UTF8 = (
    "{file}: the JSON sidecar is not valid UTF-8 (byte {position}); BIDS requires UTF-8 JSON. Re-save it as "
    "UTF-8 (e.g. iconv -f latin1 -t utf-8)."
)
JSON_INVALID = (
    "{file}: not valid JSON ({why} at line {line}, column {col}). Fix the file (typographic quotes are a "
    "common cause: use straight \" quotes)."
)
JSON_NOT_OBJECT = "{file}: the JSON sidecar must hold an object ({{\"Key\": value, ...}}). Fix the file."
JSON_UNREADABLE = "{file}: cannot read the JSON sidecar ({why}). Check its permissions."
FILE_ANNEX_MISSING = (
    "{file}: content not present (a git-annex/DataLad link whose file has not been downloaded): "
    "run `datalad get {file}` in the dataset, then rerun."
)
FILE_BROKEN_LINK = "{file}: broken symbolic link (points to {target}, which does not exist). Fix or replace the link."
FILE_MISSING = "{file}: the file disappeared or cannot be found. Check the dataset's storage."
FILE_NO_ACCESS = "{file}: no permission to read the file. Make it readable (chmod a+r) for the user running bidsad."
FILE_EMPTY = "{file}: empty file (0 bytes); the copy or conversion was interrupted. Copy or convert it again."
FILE_NOT_GZIP = (
    "{file}: named .nii.gz but not gzip-compressed. If it is an uncompressed NIfTI, rename it to .nii "
    "(or compress it: gzip); otherwise convert it again."
)
FILE_GZIP_AS_NII = "{file}: named .nii but gzip-compressed. Rename it to .nii.gz (and its JSON sidecar stays as it is)."
FILE_TRUNCATED_GZIP = (
    "{file}: truncated (the gzip stream ends early, {size} bytes on disk); the copy or download was "
    "interrupted. Copy or download it again."
)
FILE_CORRUPT_GZIP = "{file}: corrupt compressed data ({why}). Copy or download the file again."
FILE_CORRUPT_HEADER = "{file}: corrupt NIfTI header ({why}). Convert the image again from its source (e.g. dcm2niix)."
FILE_TRUNCATED_DATA = (
    "{file}: truncated ({size} bytes of header and data, the header announces {expected}); the copy or "
    "conversion was interrupted. Copy or convert it again."
)
AFFINE_DEGENERATE = (
    "{file}: degenerate {form} affine {affine} (voxel axes collapse or are not finite); the image cannot be "
    "placed in space. Fix the header (e.g. convert again from DICOM)."
)
ORIENTATION_GUESSED = (
    "{file}: the header gives no orientation (qform_code and sform_code are 0); the voxel axes were assumed "
    "RAS with the header's voxel sizes. Check the orientation in the report; fix the header if it is wrong."
)
BOLD_UNUSABLE = "{why} This BOLD run is not used; sub-{label} keeps its MRI outputs."
IMAGE_UNREADABLE = "{file}: cannot be read as NIfTI ({why}). Replace or remove the file."
IMAGE_NDIM = "{file}: a {kind} image must be {expected}-D, this one has shape {shape}."
IMAGE_ALL_NONFINITE = "{file}: every voxel is non-finite (NaN or Inf); the image is unusable. Replace the file."
IMAGE_NONFINITE = "{file}: {count} non-finite voxel values (NaN/Inf) were set to 0."
IMAGE_MULTIVOLUME = (
    "{file}: a T1w image must be a single 3-D volume; this one holds {n} volumes (shape {shape}). "
    "Split it and keep one volume, or select another T1w with --bids-filter-file."
)
IMAGE_QFORM_SFORM = (
    "{file}: the qform and sform of the header disagree (by up to {diff:.2f} mm); the sform is used. "
    "Check the image's orientation in the report."
)

FMRIPREP_MISSING = (
    "sub-{label}: --derivatives fmriprep={path}: no {what} found ({pattern}); this participant is skipped. "
    "Run fMRIPrep with --output-spaces MNI152NLin2009cAsym (or MNI152NLin6Asym), or drop --derivatives."
)
FMRIPREP_BOLD_MISSING = (
    "sub-{label}: --derivatives fmriprep={path}: no {what} for {run} ({pattern}); this run is skipped."
)

# --- anatomical preprocessing ------------------------------------------------------------------------
DEEPBET_MISSING = (
    "brain extraction needs the packages deepbet and torch ({why}). Install them, e.g. "
    "pip install torch --index-url https://download.pytorch.org/whl/cpu && pip install deepbet==1.0.2"
)
BRAIN_MASK_EMPTY = "{file}: brain extraction found no brain (empty mask); check that the image is a T1w of a head."
SKULL_STRIPPED_INPUT = (
    "{file}: the image appears to be skull-stripped already ({percent:.0f}% of a {shell_mm:g} mm shell around "
    "the brain is exactly 0); its non-zero region near the estimated brain is used as the brain mask."
)
TR_MISSING = (
    "{file}: RepetitionTime is missing from the JSON sidecar (and its inherited sidecars). "
    "Add \"RepetitionTime\" in seconds to {sidecar}."
)
TR_BAD = "{file}: RepetitionTime {tr!r} in the JSON sidecar is not a positive number of seconds."
TR_MS = (
    "{file}: RepetitionTime {tr} looks like milliseconds (BIDS requires seconds); not guessed. Give it in "
    "seconds in the JSON sidecar."
)
TR_FROM_HEADER = (
    "{file}: no RepetitionTime in the JSON sidecars; using the NIfTI header's time step, {tr:g} s. Add "
    "\"RepetitionTime\" (seconds) to the sidecar to make this explicit."
)
TR_DISAGREE = (
    "{file}: RepetitionTime {tr} s in the JSON sidecar differs from the NIfTI header's time step ({header:g} s); "
    "the sidecar's value is used, as BIDS requires. Check the header."
)
FRAMES_CROPPED = "{file}: {n} volumes; the first {frames} are used by preset '{preset}'."
FRAMES_PADDED = "{file}: {n} volumes; padded with {pad} empty frames to {frames} (frame_mask marks them)."
PLUGIN_CLUSTER = (
    "nipype plugin {plugin}: every workflow node is submitted as its own cluster job, which must find "
    "bidsad on the compute nodes (a native installation, not one inside a container); for containers use "
    "one job per participant instead (docs/containers.md, 'SLURM')."
)
OUTPUTS_OTHER_VERSION = (
    "{out} holds outputs of bidsad {old}; this run is bidsad {new}. dataset_description.json now names {new}, and "
    "outputs of the two versions may be mixed: use a new output folder, or rerun every participant with {new}."
)
VALIDATOR_MISSING = (
    "BIDS validator not found: bids-validator-deno, a dependency of bidsad, is missing from bidsad's Python "
    "environment (pip install bids-validator-deno there); the input was not validated. File names are still checked "
    "while indexing."
)
VALIDATOR_FAILED = "the BIDS validator did not run ({why}); the input was not validated."
VALIDATOR_IGNORED = "BIDS validator: {n} error(s) outside the raw data that bidsad reads ({where}); ignored."
VALIDATOR_OK = "BIDS validator: no errors in {bids}."
VALIDATOR_BOM = ("JSON sidecar(s) start with a UTF-8 byte-order mark, which the BIDS validator rejects and bidsad "
                 "reads: {files}. Save them as UTF-8 without a BOM to make the dataset valid for other tools.")
VALIDATOR_ERRORS = (
    "the BIDS validator found {n} error(s) in {bids}:\n{summary}\n"
    "Fix them (the validator's full report: {command} {bids}, the validator installed with bidsad; or, with Deno "
    "installed: deno run -A jsr:@bids/validator {bids}), or pass --skip-bids-validation to go on anyway; bidsad "
    "then reports each unusable file by name."
)
WORK_OTHER_VERSION = (
    "-w/--work-dir: {work} was used by bidsad {old}; this is bidsad {new}, so its cached results are not "
    "reused (everything is recomputed). Use a fresh work directory to save space."
)
PARTICIPANT_FINISHED = "sub-{label} done, {k} of {n}, elapsed {elapsed}"
PARTICIPANT_FINISHED_FAILED = "sub-{label} failed, {k} of {n}, elapsed {elapsed} (reasons in the summary at the end)"
STEP_FAILED = "sub-{label}: step {step} failed after {elapsed}; the participant's other steps go on."
STEPS_DONE = "{done} of {total} steps done ({share:.0f} %), elapsed {elapsed}"
PARTICIPANT_FAILED = "sub-{label}: failed: {why}"
PARTICIPANTS_FAILED = "{n} of {total} participants failed: {labels}. See their reports (sub-<label>.html) and {log}."
PARTICIPANT_DONE = "Participant level finished: {n} participant(s), outputs in {out}."

# --- group level -----------------------------------------------------------------------------------
NO_PARTICIPANTS_TSV = (
    "participants.tsv not found in {bids}; the group level needs it with a 'diagnosis' column (CN, MCI, AD)."
)
NO_ID_COLUMN = "{file}: no 'participant_id' column (columns: {columns}). The first column must be participant_id (sub-<label>)."
TSV_NOT_UTF8 = "{file}: not valid UTF-8 (byte {position}); BIDS requires UTF-8. Re-save it as UTF-8."
TSV_REPEATED_COLUMN = "{file}: column(s) {columns} appear more than once; the first of each is used."
TSV_SESSIONS = "{file}: one row per session (session_id column); the earliest session's diagnosis is used, as for the T1w."
TSV_CONFLICT = (
    "{file}: participant(s) {labels} have several rows with different diagnoses; they are excluded from "
    "training. Keep one row per participant."
)
TSV_UNMATCHED = (
    "{file}: participant_id(s) {labels} match no sub-* folder (ids are not re-padded: sub-3 is not sub-03); "
    "those rows are ignored."
)
TSV_UNLISTED = "{file}: {labels} have data but no row; they have no diagnosis and are not used for training."
NO_DIAGNOSIS_COLUMN = "{file}: no 'diagnosis' column (columns: {columns}). Add one with CN, MCI or AD per participant."
COLUMN_NAME_HINT = " Column names are case-sensitive: rename '{found}' to '{expected}'."
NO_FEATURES = (
    "out_dir: no model features for preset '{preset}' in {out}.{found} Run the participant level first "
    "(bidsad {bids} {out} participant --preset {preset})."
)
FEATURES_NO_MRI_INPUT = (
    " T1w tensors exist, but none for --mri-input {mri_input} (*_{ending}.npy): they are made by this version's "
    "participant level (rerun it; cached steps are reused), or use --mri-input t1w."
)
FEATURES_OTHER_PRESETS = " Features exist for preset(s) {presets}: pass --preset {first} to use them."
GROUP_REPLACED = "group/ of an earlier run (models: {models}) is replaced by this run's results (--overwrite)."
GROUP_KEPT = (
    "group/ of an earlier run (models: {models}) is kept as {kept}; this run writes a new group/. "
    "Pass --overwrite to replace it instead."
)
GROUP_LABELS_MISSING = (
    "--participant-label: no participant-level outputs in out_dir and no row in participants.tsv for {labels}. "
    "Participants available: {available}. Check the labels, or run the participant level for them first."
)
EXCLUDED_NOT_SELECTED = "not selected by --participant-label"
EXCLUDED_NO_DIAGNOSIS = "no diagnosis in participants.tsv"
EXCLUDED_BAD_DIAGNOSIS = "diagnosis '{value}' is not one of CN, MCI, AD or their synonyms (README: Diagnosis vocabulary)"
EXCLUDED_NUMERIC_DIAGNOSIS = (
    "diagnosis '{value}' is a numeric code without a meaning: describe the codes in participants.json "
    "(\"diagnosis\": {{\"Levels\": {{\"0\": \"CN\", \"1\": \"MCI\", \"2\": \"AD\"}}}})"
)
EXCLUDED_NOT_IN_TSV = "not listed in participants.tsv"
EXCLUDED_CONFLICT = "several rows with different diagnoses in participants.tsv"
EXCLUDED_NO_T1W_FEATURES = "no MRI features (participant level failed or not run)"
EXCLUDED_CLASS = "diagnosis not in the task's classes (--classes {task})"
CLASSES_UNKNOWN = "--classes: unknown class {classes}; the classes are {known}"
CLASSES_TOO_FEW = ("a classification task needs two classes with participants: the task has {task} (classes with "
                   "included participants: {present}); check participants.tsv's diagnosis column and --classes")
DUPLICATE_SCANS = ("the same T1w scan (identical voxel content) appears under different participant IDs; one person "
                   "in training and test is a leak. Remove the duplicates from participants.tsv or the derivatives:\n  {items}")
HASH_UNKNOWN = ("{n} participant(s) have no source content hash (derivatives of an older bidsad and the source T1w not "
                "found under bids_dir): not checked for duplicate scans: {ids}")
CLASSES_ONE = "--classes {classes}: a classification task needs two or more classes (e.g. --classes CN AD)"
CLASS_ABSENT = "--classes {cls}: no included participant has this diagnosis; the task goes on without it"
PARAMETERS_MISMATCH = (
    "Group level: the features of preset '{preset}' in {out} were not all made with the same parameters, "
    "and bidsad does not mix them:\n  {items}\nRerun the participant level of the participants named "
    "(same bidsad version and options as the others), or remove their features."
)
MISMATCH_ITEM = "{participant}: {tensor}: {parameter} = {value} (the others: {expected})"
TOO_FEW = "Group level: {n} usable participant(s); at least {need} are needed for cross-validation."
ONE_CLASS = "Group level: every usable participant has diagnosis {label}; classification needs at least two classes."
FOLDS_REDUCED = (
    "--folds {requested}: the smallest class has {smallest} participant(s); using {used} folds."
)
FOLDS_UNSTRATIFIED = (
    "The smallest class has 1 participant: folds cannot be stratified; using {used} unstratified folds "
    "(some test participants have no class-mate in training)."
)
MODEL_SKIPPED = "model {model}: {why}; skipped."
SPLIT_COHORT = "{modalities}: {warning}"
CLASS_UNSEEN = (
    "{modalities}, fold {fold}: test class(es) {classes} have no participant in training; those test "
    "participants cannot be classified correctly."
)
EXTRA_BOLD = "{label}: {n} tensors of one kind; the group level uses the first ({used})."
NO_VALIDATION = "fold {fold}: a class has fewer than two training participants; no inner validation split (no early stopping)."
FOLD_SKIPPED = "model {model}, fold {fold}: {why}; skipped."
LEAKAGE = "Leakage check failed: participant(s) {labels} are in both training and evaluation of fold {fold}."
SMALL_N = (
    "Only {n} participants: every metric here has a very wide uncertainty. With placeholder or small "
    "cohorts, do not interpret these numbers clinically."
)
GROUP_DONE = "Group level finished: report at {report}."
PAPER_PROTOCOL = (
    "These numbers are not comparable with those of Kujur & Monfared (2026): the paper augmented its 29 "
    "participants before splitting, so augmented copies of test participants were in training. bidsad splits "
    "by participant first and evaluates only participants unseen in training."
)
REPORTS_NO_GROUP = (
    "--reports-only: no group outputs in {group} (metrics.json missing). Run the group level first "
    "(bidsad {bids} {out} group)."
)
REPORTS_NO_PARTICIPANT = (
    "--reports-only: no participant-level outputs in {out} for {labels}. Run the participant level first "
    "(bidsad {bids} {out} participant)."
)
INTERRUPTED = (
    "bidsad: interrupted. Finished participants and folds are kept; run the same command (same -w) to resume."
)
REPORTS_DONE = "Reports rebuilt from existing outputs: {reports}."
SALIENCY_FAILED = "model {model}: saliency maps failed ({why}); the model's results are kept."
REPORT_FAILED = "{report} could not be written ({why}); the outputs are kept. Details: {details}"
BOILERPLATE_FAILED = "logs/CITATION.md not written ({why}); the outputs are kept."
FIGURE_FAILED = "This figure could not be drawn: {why}"

# functional workflow
DENOISE_SKIPPED = "{file}: --denoise cleaning skipped: {why}; the BOLD is used without it."
# Group level: split protocol, resume, baselines
SPLIT_PROTOCOL_PAPER = (
    "SPLIT PROTOCOL 'paper' (comparison only): augmented copies of every participant were made BEFORE "
    "splitting, so copies of test participants are in training. This LEAKS: its scores are inflated and "
    "must not be reported as performance. The leakage check is knowingly bypassed. Use the default "
    "(--split-protocol participant) for results."
)
SPLIT_PROTOCOL_SLICE = (
    "SPLIT PROTOCOL 'slice' (comparison only): the 2dcnn's axial slices, not participants, were split, so "
    "slices of test participants are in training. This LEAKS: its scores are inflated and must not be reported "
    "as performance. The leakage check is knowingly bypassed. Use the default (--split-protocol participant) for results."
)
SPLIT_PROTOCOL_SLICE_MODELS = "--split-protocol slice splits the 2dcnn's slices: use it with --models 2dcnn only (got: {models})."
BASELINES_SLICE_PROTOCOL = "Baselines not run: --split-protocol slice splits slices, not participants."
LEAKAGE_BYPASSED = (
    "Leakage check bypassed (--split-protocol {protocol}): fold {fold} trains on {what} of {n} of its test "
    "participant(s)."
)
FOLD_RESUMED = "model {model}, {fold}: resuming from the checkpoint after epoch {epoch} in {path}."
FOLD_REUSED = "model {model}, {fold}: finished with the same parameters in {path}; reusing it (not retrained)."
BASELINES_SKIPPED_DEMOGRAPHY = "Baseline age-sex-logreg skipped: participants.tsv has no 'age' or 'sex' column."
BASELINE_INPUT_SHAPE = "Baseline voxel-svm: the grey-matter maps of {ids} are not on the grid of the others {shape}; left out."
BASELINES_NO_BOLD = "connectivity baselines: no participant has BOLD features (a T1w-only cohort); not run."
MODEL_NO_INPUTS = "model {model}: no participant has {modalities} features (e.g. a T1w-only dataset); not trained."
BASELINES_SKIPPED = (
    "Baselines on {what} skipped: {why}. They need the participant level's outputs "
    "(*_desc-gm_morph.tsv, *_atlas-<atlas>_timeseries.tsv, *_res-4_label-GM_desc-modulated_probseg.nii.gz, "
    "*_desc-volumes_morph.tsv); rerun the participant "
    "level with this version of bidsad to make them."
)

# applying trained models (group --apply-models)
MODEL_CARD_FAILED = "group/model_card.json could not be written ({why}); --apply-models cannot use this run."
LEVEL_ONLY = ("{option} is a {level}-level option and does nothing at the {other} level: remove it from this "
              "{other}-level command (give it when running analysis_level '{level}').")
APPLY_NO_CARD = ("--apply-models {path}: no model_card.json there. Give the group/ folder of an earlier group run "
                 "(<earlier out_dir>/group) made by this version of bidsad; older runs must be retrained.")
APPLY_BAD_CARD = "--apply-models: {path} cannot be used: {why}."
APPLY_LEAKY_CARD = ("--apply-models: these models were evaluated with the paper's leaking split protocol; their "
                    "cross-validated metrics are inflated.")
APPLY_SAME_ID = "{id} is a training participant of these models (same participant ID)"
APPLY_SAME_SCAN = "{id} has the same T1w scan (voxel content hash) as training participant {training}"
APPLY_LEAK = ("refusing to apply the models of run {run}: participants of this dataset were used to train them, so "
              "their predictions would not be honest:\n  {items}\nRemove these participants from the dataset (or "
              "their derivatives), or, if they are truly different people who share an ID, relabel them.")
APPLY_CARD_NO_HASHES = ("--apply-models: the training run recorded no content hashes; new participants were checked "
                        "against its training participants by ID only.")
APPLY_PARAMETERS = ("--apply-models: the features in out_dir were not made with the parameters of the training features "
                    "(preset '{preset}'), and bidsad does not mix them:\n  {items}\nRerun the participant level with "
                    "--preset {preset} and the bidsad version of the training run.")
APPLY_SAME_RUN = ("--apply-models {path} is the group folder of this out_dir: applying models to their own training "
                  "participants is not an evaluation. Give another dataset's out_dir.")
APPLY_PRESET = "--apply-models: using the training run's preset '{preset}'."
APPLY_NO_INPUTS = "model {model}: no participant has its inputs ({modalities}); not applied."
APPLY_REPLACES = "--apply-models: replacing the earlier group outputs in {group}."
APPLY_DONE = "Applied the models to {n} participant(s): {report}"
