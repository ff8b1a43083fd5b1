"""A catalogue of bad requests, data folders and environments. Each must end with exit status 2 (never 1, which
means gated out), exactly one `error:` line naming the field, file or row, an unchanged registry, and an
untouched base model. Most are refused before anything runs; the data-folder cases stop at curation."""

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import merge
from PIL import Image

from erasediff.defaults.resolve import model_path
from erasediff.request.schema import UTILITY_GATES, GateSettings
from erasediff.util.hashing import folder_hash
from pipelines.cli import main as erasediff
from pipelines.run_request import main as run

pytestmark = pytest.mark.integration  # minutes: left out of `make test-fast`

EXAMPLE = Path(__file__).parents[1] / "configs" / "request_digits_forget_3.yaml"
MODEL = "erasediff-bad-inputs"


def request(tmp: Path, **overrides) -> Path:
    config = merge(
        yaml.safe_load(EXAMPLE.read_text()),
        {"request": {"id": "REQ-bad"}, "registry": {"model_name": MODEL}, **overrides},
    )
    path = tmp / "request.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def raw(tmp: Path, text: str) -> Path:
    path = tmp / "request.yaml"
    path.write_text(text)
    return path


def digits_folder(
    tmp: Path, rows: list[str] | None = None, n: int = 12, extra: Callable[[Path], None] | None = None
) -> str:
    """A labelled folder of real 3s, with `rows` appended to labels.csv (or replacing it when given with n=0)."""
    from erasediff.data.digits import load_digits_split

    folder = tmp / "forget"
    folder.mkdir()
    train, _ = load_digits_split()
    threes = train.images[train.labels == 3]
    lines = []
    for i in range(n):
        Image.fromarray(((threes[i, 0].numpy() + 1) * 127.5).round().astype(np.uint8)).save(folder / f"{i}.png")
        lines.append(f"{i}.png,3")
    (folder / "labels.csv").write_text("file,label\n" + "\n".join(lines + (rows or [])) + "\n")
    if extra:
        extra(folder)
    return str(folder)


def with_symlink(tmp: Path) -> str:
    return digits_folder(tmp, ["link.png,3"], extra=lambda f: os.symlink("/etc/passwd", f / "link.png"))


def with_sibling(tmp: Path) -> str:
    (tmp / "other").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp / "other" / "x.png")
    return digits_folder(tmp, ["../other/x.png,3"])


DATA = "digits"
# name -> (argv after the request path, or a full argv builder), the request/environment, the words the error line must
# hold
CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    # the request file itself
    "missing file": (lambda t: [str(t / "nope.yaml")], "config file not found"),
    "a folder, not a file": (lambda t: [str(t)], "config file not found"),
    "not YAML": (lambda t: [str(raw(t, "request: [unclosed\n"))], "is not valid YAML"),
    "a YAML list": (lambda t: [str(raw(t, "- a\n- b\n"))], "must be a YAML mapping"),
    "a key twice": (
        lambda t: [
            str(raw(t, "request: {id: r, requester: a, reason: b}\ntarget: {classes: [3]}\ntarget: {classes: [4]}\n"))
        ],
        "duplicate key 'target'",
    ),
    "unknown key": (lambda t: [str(request(t, colour="blue"))], "colour: Extra inputs are not permitted"),
    "no request id": (
        lambda t: [str(raw(t, "request: {requester: a, reason: b}\ntarget: {classes: [3]}\n"))],
        "request.id: Field required",
    ),
    "id with a quote": (
        lambda t: [str(request(t, request={"id": "REQ-'x"}))],
        "request.id: String should match pattern",
    ),
    "id with a path": (lambda t: [str(request(t, request={"id": "../x"}))], "request.id: String should match pattern"),
    "empty requester": (lambda t: [str(request(t, request={"requester": ""}))], "request.requester"),
    "classes and concept": (
        lambda t: [str(request(t, target={"classes": [3], "concept": "x"}))],
        "set exactly one of target.classes",
    ),
    "a notify block naming no channel": (
        lambda t: [str(request(t, notify={"events": ["failed"]}))],
        "notify: names no channel: give webhook_env, alerter, or both",
    ),
    "a webhook URL written in the request": (
        lambda t: [str(request(t, notify={"webhook_env": "https://hooks.example.com/T0/B0/secret"}))],
        "notify.webhook_env: String should match pattern",
    ),
    "a class twice": (lambda t: [str(request(t, target={"classes": [3, 3]}))], "classes lists a class twice"),
    "class outside the model": (lambda t: [str(request(t, target={"classes": [12]}))], "12"),
    "negative class": (lambda t: [str(request(t, target={"classes": [-1]}))], "-1"),
    "lr infinite": (
        lambda t: [str(request(t, unlearning={"advanced": {"lr": float("inf")}}))],
        "unlearning.advanced.lr: Input should be a finite number",
    ),
    "lr negative": (
        lambda t: [str(request(t, unlearning={"advanced": {"lr": -1}}))],
        "unlearning.advanced.lr: Input should be greater than 0",
    ),
    "lr text": (lambda t: [str(request(t, unlearning={"advanced": {"lr": "fast"}}))], "unlearning.advanced.lr"),
    "no steps": (lambda t: [str(request(t, unlearning={"advanced": {"steps": 0}}))], "unlearning.advanced.steps"),
    "fractional steps": (
        lambda t: [str(request(t, unlearning={"advanced": {"steps": 1.5}}))],
        "unlearning.advanced.steps",
    ),
    "unknown method": (
        lambda t: [str(request(t, unlearning={"advanced": {"method": "magic"}}))],
        "unlearning.advanced.method",
    ),
    "unknown forget loss": (
        lambda t: [str(request(t, unlearning={"advanced": {"forget_loss": "x"}}))],
        "unlearning.advanced.forget_loss",
    ),
    "probe holding nothing out": (
        lambda t: [str(request(t, unlearning={"advanced": {"probe": {"every": 5, "held_out": 0}}}))],
        "unlearning.advanced.probe.held_out",
    ),
    "unknown recipe": (
        lambda t: [str(request(t, unlearning={"recipe": "magic"}))],
        "unlearning.recipe: Input should be 'robust'",
    ),
    "a recipe's setting outside advanced": (
        lambda t: [str(request(t, unlearning={"steps": 3}))],
        "unlearning.steps: the recipe chooses",
    ),
    "unknown advanced setting": (
        lambda t: [str(request(t, unlearning={"advanced": {"lrr": 1}}))],
        "unlearning.advanced.lrr: Extra inputs",
    ),
    "unknown attack budget": (
        lambda t: [str(request(t, evaluation={"attacks": {"budget": "huge"}}))],
        "evaluation.attacks.budget",
    ),
    "negative checkpoint interval": (lambda t: [str(request(t, checkpoint_every=-1))], "checkpoint_every"),
    "no evaluation samples": (
        lambda t: [str(request(t, evaluation={"generation": {"samples_per_class": 0}}))],
        "samples_per_class",
    ),
    "gate infinite": (
        lambda t: [str(request(t, gates={"fid_increase_max": float("inf")}))],
        "gates.fid_increase_max: Input should be a finite number",
    ),
    "gate NaN": (
        lambda t: [str(request(t, gates={"forgotten_accuracy_max": float("nan")}))],
        "gates.forgotten_accuracy_max",
    ),
    "gate negative": (
        lambda t: [str(request(t, gates={"retained_accuracy_drop_max": -0.1}))],
        "gates.retained_accuracy_drop_max",
    ),
    "every gate off": (
        lambda t: [
            str(
                request(
                    t, gates=dict.fromkeys(set(GateSettings.model_fields) - {"bound", "earlier_erasures_accuracy_max"})
                )
            )
        ],
        "every gate is null",
    ),
    "gate nothing measures": (
        lambda t: [str(request(t, gates={"nudity_rate_max": 0.1}))],
        "nudity_rate_max are checked but the evaluation",
    ),
    "model name leaving its folder": (
        lambda t: [str(request(t, registry={"model_name": "../../evil"}))],
        "registry.model_name",
    ),
    "model name with a quote": (lambda t: [str(request(t, registry={"model_name": "a'b"}))], "registry.model_name"),
    "bad alias": (lambda t: [str(request(t, registry={"alias": "1st"}))], "registry.alias"),
    "unknown tracking scheme": (
        lambda t: [str(request(t, tracking={"uri": "bogus://x"}))],
        "tracking URI 'bogus://x' has scheme 'bogus'",
    ),
    "file tracking store": (lambda t: [str(request(t, tracking={"uri": "file:///tmp/mlruns"}))], "has scheme 'file'"),
    "unreachable tracking server": (
        lambda t: [str(request(t, tracking={"uri": "http://127.0.0.1:9"}))],
        "is not reachable",
    ),
    "generation for a class request": (
        lambda t: [
            str(
                raw(
                    t,
                    "request: {id: r, requester: a, reason: b}\ntarget: {classes: [3]}\n"
                    "data: {forget: {generate: {prompts: [x]}}}\n",
                )
            )
        ],
        "generation is for concept",
    ),
    "concept without text-to-image evaluation": (
        lambda t: [
            str(
                raw(
                    t,
                    "request: {id: r, requester: a, reason: b}\n"
                    "target: {concept: nudity, prompts: [nude], anchors: [dressed]}\nbase_model: text-digits\n",
                )
            )
        ],
        "evaluation.text_to_image is required",
    ),
    "concept without anchors": (
        lambda t: [
            str(
                raw(
                    t,
                    "request: {id: r, requester: a, reason: b}\ntarget: {concept: nudity, prompts: [nude]}\n"
                    "base_model: text-digits\nevaluation: {text_to_image: {nudity: {prompts: x.csv}, "
                    "captions: {prompts: c.csv, clip_model: clip}}}\n"
                    "gates: {nudity_rate_max: 0.1, clip_score_drop_max: 1.0, forgotten_accuracy_max: null, "
                    "retained_accuracy_drop_max: null, fid_increase_max: null}\n",
                )
            )
        ],
        "anchor",
    ),
    "no utility gate": (
        lambda t: [str(request(t, gates=dict.fromkeys(UTILITY_GATES)))],
        "no utility gate: set one of " + ", ".join(UTILITY_GATES),
    ),
    "base model folder missing": (lambda t: [str(request(t, base_model=str(t / "no-model")))], "no-model"),
    "run config missing": (lambda t: [str(request(t)), "--run-config", str(t / "none.yaml")], "run config not found"),
    # data folders (stop at curation, before any unlearning)
    "no labels.csv": (lambda t: [str(request(t, data={"forget": str(t), "retain": DATA}))], "has no labels.csv"),
    "labels.csv without its columns": (
        lambda t: [
            str(
                request(
                    t,
                    data={
                        "forget": digits_folder(
                            t, extra=lambda f: (f / "labels.csv").write_text("name,class\n0.png,3\n")
                        ),
                        "retain": DATA,
                    },
                )
            )
        ],
        "must start with the columns file,label",
    ),
    "a fractional label": (
        lambda t: [str(request(t, data={"forget": digits_folder(t, ["0.png,3.7"]), "retain": DATA}))],
        "label '3.7' of 0.png",
    ),
    "a label in words": (
        lambda t: [str(request(t, data={"forget": digits_folder(t, ["1.png,abc"]), "retain": DATA}))],
        "label 'abc' of 1.png",
    ),
    "a named file that is missing": (
        lambda t: [str(request(t, data={"forget": digits_folder(t, ["gone.png,3"]), "retain": DATA}))],
        "names gone.png, which is not in",
    ),
    "a symlink out of the folder": (
        lambda t: [str(request(t, data={"forget": with_symlink(t), "retain": DATA}))],
        "inside_folder",
    ),
    "a path to a sibling folder": (
        lambda t: [str(request(t, data={"forget": with_sibling(t), "retain": DATA}))],
        "forget/../other/x.png",
    ),
    "an absolute path": (
        lambda t: [str(request(t, data={"forget": digits_folder(t, ["/etc/hostname,3"]), "retain": DATA}))],
        "inside_folder",
    ),
    "a label of the wrong class": (
        lambda t: [
            str(
                request(
                    t,
                    data={
                        "forget": digits_folder(
                            t, ["five.png,5"], extra=lambda f: shutil.copyfile(f / "0.png", f / "five.png")
                        ),
                        "retain": DATA,
                    },
                )
            )
        ],
        "column=label",
    ),
    "a corrupt image": (
        lambda t: [
            str(
                request(
                    t,
                    data={
                        "forget": digits_folder(
                            t, ["bad.png,3"], extra=lambda f: (f / "bad.png").write_bytes(b"\x89PNG truncated")
                        ),
                        "retain": DATA,
                    },
                )
            )
        ],
        "column=readable",
    ),
    # 15000 x 15000 pixels (a 1-bit PNG of a few kB): over PIL's decompression-bomb limit, refused naming the file
    "a decompression bomb": (
        lambda t: [
            str(
                request(
                    t,
                    data={
                        "forget": digits_folder(
                            t, ["bomb.png,3"], extra=lambda f: Image.new("1", (15000, 15000)).save(f / "bomb.png")
                        ),
                        "retain": DATA,
                    },
                )
            )
        ],
        "bomb.png refused: Image size (225000000 pixels) exceeds limit",
    ),
}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad-inputs-work")


def registry_state(work: Path) -> list:
    from mlflow.tracking import MlflowClient

    if not (work / "mlflow.db").exists():
        return []
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    return sorted(
        (
            m.name,
            sorted((v.version, tuple(sorted(v.aliases))) for v in client.search_model_versions(f"name = '{m.name}'")),
        )
        for m in client.search_registered_models()
    )


def one_error_line(out: str) -> str:
    lines = [line for line in re.sub(r"\x1b\[[0-9;]*m", "", out).splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out[-3000:]
    return lines[0]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_request(name: str, work: Path, tmp_path: Path, capsys) -> None:
    argv, expected = CASES[name]
    base_hash, before = folder_hash(model_path("digits")), registry_state(work)
    code = run([*argv(tmp_path), "--workdir", str(work)])
    captured = capsys.readouterr()
    line = one_error_line(captured.out + captured.err)
    assert code == 2, line
    assert expected in line, line
    assert registry_state(work) == before
    assert folder_hash(model_path("digits")) == base_hash


ENVIRONMENTS: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "work folder that cannot be created": (
        lambda t: [str(request(t)), "--workdir", str(_file(t) / "sub")],
        "cannot be created",
    ),
    "corrupt MLflow database": (lambda t: [str(request(t)), "--workdir", str(_corrupt_store(t))], "cannot be opened"),
}


def _file(tmp: Path) -> Path:
    (tmp / "a-file").write_text("not a folder")
    return tmp / "a-file"


def _corrupt_store(tmp: Path) -> Path:
    (tmp / "w").mkdir()
    (tmp / "w" / "mlflow.db").write_bytes(b"this is not an SQLite database" * 100)
    return tmp / "w"


@pytest.mark.parametrize("name", list(ENVIRONMENTS))
def test_bad_environment(name: str, tmp_path: Path, capsys) -> None:
    argv, expected = ENVIRONMENTS[name]
    base_hash = folder_hash(model_path("digits"))
    code = run(argv(tmp_path))
    captured = capsys.readouterr()
    line = one_error_line(captured.out + captured.err)
    assert code == 2 and expected in line, line
    assert folder_hash(model_path("digits")) == base_hash


SCRATCH_PREFIXES = ("curated-", "unlearned-", "evaluation-", "promoted-", "report-", "checks-", "check-", "base-")


def test_a_failed_run_leaves_no_scratch(work: Path, tmp_path: Path, capsys) -> None:
    """Intermediate folders live under the work folder's scratch/ and go when the run ends, failed or not."""
    import tempfile

    def ours() -> set[str]:
        return {p.name for p in Path(tempfile.gettempdir()).iterdir() if p.name.startswith(SCRATCH_PREFIXES)}

    before = ours()
    code = run(
        [
            str(request(tmp_path, data={"forget": digits_folder(tmp_path, ["gone.png,3"]), "retain": DATA})),
            "--workdir",
            str(work),
        ]
    )
    capsys.readouterr()
    assert code == 2
    assert ours() == before
    assert not [p for p in (work / "scratch").glob("*/*")]


def test_tracking_uri_from_the_environment_is_checked_too(tmp_path: Path, work: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "bogus://x")
    code = run([str(request(tmp_path)), "--workdir", str(work)])
    captured = capsys.readouterr()
    line = one_error_line(captured.out + captured.err)
    assert code == 2 and "has scheme 'bogus'" in line, line


def test_status_of_an_id_with_a_quote_is_refused(work: Path, capsys) -> None:
    code = erasediff(["request", "status", "REQ-'x", "--workdir", str(work)])
    captured = capsys.readouterr()
    line = one_error_line(captured.out + captured.err)
    assert code == 2 and "is not a request id" in line, line


def test_the_catalogue_is_large() -> None:
    assert len(CASES) + len(ENVIRONMENTS) + 2 >= 40
