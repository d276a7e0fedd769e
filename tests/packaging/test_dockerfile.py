"""The Dockerfile, read as Docker reads it (no engine runs here): a multi-stage build of the
default-feature release binary into a distroless, non-root image without shell."""

import fnmatch
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from permissions import REPOSITORY


def instructions():
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (REPOSITORY / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    parsed = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        parsed.append((instruction.upper(), arguments.strip()))
    return parsed


def stages():
    result = []
    for instruction, arguments in instructions():
        if instruction == "FROM":
            result.append({"from": arguments, "steps": []})
        else:
            result[-1]["steps"].append((instruction, arguments))
    return result


def test_two_stages_and_a_distroless_nonroot_runtime():
    build, runtime = stages()
    assert re.match(r"\S*rust:1\.\d+-bookworm AS build$", build["from"]), build["from"]
    assert runtime["from"] == "gcr.io/distroless/cc-debian12:nonroot"


def test_the_build_uses_the_lock_file_and_default_features_only():
    build, _ = stages()
    runs = " ".join(arguments for instruction, arguments in build["steps"] if instruction == "RUN")
    assert "cargo build --release --locked" in runs
    for flag in ("--features", "--all-features", "-F ", "--no-default-features"):
        assert flag not in runs, flag


def test_the_runtime_runs_the_operator_as_uid_65532_without_a_shell():
    _, runtime = stages()
    steps = dict(runtime["steps"])
    assert "RUN" not in steps, "the runtime stage has no shell to run anything"
    assert steps["USER"] == "65532:65532"
    assert json.loads(steps["ENTRYPOINT"]) == ["/usr/local/bin/healthlake-operator"]
    assert json.loads(steps["CMD"]) == ["run"]
    copied = [arguments for instruction, arguments in runtime["steps"] if instruction == "COPY"]
    assert copied == ["--from=build /out/healthlake-operator /usr/local/bin/healthlake-operator"]


def test_every_copied_source_exists_and_passes_the_dockerignore():
    patterns = [line.strip() for line in (REPOSITORY / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def included(path):
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            pattern = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
                keep = negated
        return keep

    build, _ = stages()
    for instruction, arguments in build["steps"]:
        if instruction != "COPY":
            continue
        *sources, _destination = shlex.split(arguments)
        for source in sources:
            assert (REPOSITORY / source).exists(), source
            assert included(source.rstrip("/")), f"{source} is excluded by .dockerignore"
    assert not included("target")
    assert not included(".git")


def test_hadolint_finds_nothing():
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), "--failure-threshold", "style", str(REPOSITORY / "Dockerfile")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
