"""Shared fixtures. Telemetry and hub access are off for every test (no network here)."""

import atexit
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from erasediff.util.offline import go_offline

go_offline()
# ZenML reads its global config location at import: a private store per test session, never the user's.
if "ZENML_CONFIG_PATH" not in os.environ:
    os.environ["ZENML_CONFIG_PATH"] = tempfile.mkdtemp(prefix="zenml-tests-")
    atexit.register(shutil.rmtree, os.environ["ZENML_CONFIG_PATH"], ignore_errors=True)  # no scratch left behind
# The session's temp files, and its children's, in one folder removed at exit: MLflow leaves a lock file in the temp
# folder for every tracking database it creates (mlflow/store/db/utils.py), dozens a session.
if "ERASEDIFF_TESTS_TMP" not in os.environ:
    os.environ["TMPDIR"] = os.environ["ERASEDIFF_TESTS_TMP"] = tempfile.mkdtemp(prefix="erasediff-tests-")
    tempfile.tempdir = None  # read TMPDIR again
    atexit.register(shutil.rmtree, os.environ["TMPDIR"], ignore_errors=True)

from erasediff.defaults.digits_models import CLASSIFIER_DIR, MODEL_DIR, digits_default
from erasediff.models.class_model import ClassDiffusionModel
from mlflow_adapters.tracking import mlflow_tracking  # noqa: E402, F401  (tests import it from here)

PROMPTS = Path(__file__).parents[1] / "erasediff" / "assets" / "prompts" / "i2p_format_sample.csv"


SERVER_PASSWORD = "pw-" + "9f3c1e7a5b2d4c6e8a0b"  # the basic-auth admin password; must never reach a file under work


@contextlib.contextmanager
def basic_auth_server(folder: Path):
    """A real `mlflow server --app-name basic-auth` (SQLite backend, proxied artifacts) on a free local port. Yields
    its URI and `as_user(name, password)`, which puts a user's credentials in the environment (the only place the
    client reads them from); the admin's password is SERVER_PASSWORD."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-key",
        "MLFLOW_AUTH_ADMIN_PASSWORD": SERVER_PASSWORD,
    }
    server = subprocess.Popen(
        [
            *(str(Path(sys.executable).with_name("mlflow")), "server", "--app-name", "basic-auth"),
            *("--backend-store-uri", f"sqlite:///{folder / 'server.db'}"),
            *("--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port)),
            *("--workers", "1"),
        ],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}

    def as_user(name: str, password: str = SERVER_PASSWORD) -> None:
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = name, password

    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not start")
        yield uri, as_user
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.terminate()
        server.wait(timeout=30)


def merge(base: dict, update: dict) -> dict:
    """Nested dict update (request YAML overrides in tests)."""
    out = dict(base)
    for key, value in update.items():
        out[key] = merge(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


@pytest.fixture(scope="session")
def digits_folder() -> Path:
    """The packaged digits DDPM + evaluator folder (read-only: tests copy it before writing near it)."""
    return digits_default(progress=False)[2]


@pytest.fixture(scope="session")
def digits_model(digits_folder: Path) -> ClassDiffusionModel:
    from erasediff.models.class_model import load_class_model

    return load_class_model(digits_folder / MODEL_DIR)


@pytest.fixture(scope="session")
def digits_classifier(digits_folder: Path):
    from erasediff.models.classifier import ImageClassifier

    return ImageClassifier.from_pretrained(digits_folder / CLASSIFIER_DIR)


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory) -> Path:
    """A random-weight Stable Diffusion pipeline folder built in code (16x16 images): exercises paths, measures
    nothing."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from erasediff.data.prompts import load_prompt_csv
    from erasediff.models.clip import build_word_tokenizer

    rows = load_prompt_csv(PROMPTS)
    tokenizer = build_word_tokenizer(" ".join(r.prompt for r in rows).split())
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=tokenizer.model_max_length,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=2,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=16,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDIMScheduler(steps_offset=1, clip_sample=False),  # what SD's pipeline would set anyway
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    folder = tmp_path_factory.mktemp("tiny-sd") / "pipeline"
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def tiny_sdxl_dir(tmp_path_factory) -> Path:
    """A random-weight SDXL pipeline folder (two text encoders, text/time added conditioning), 16x16 images."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from erasediff.models.clip import build_word_tokenizer

    tokenizer = build_word_tokenizer("a photo of nude naked person wearing clothes painting".split())
    torch.manual_seed(0)
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=tokenizer.model_max_length,
        projection_dim=16,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=2,
        norm_num_groups=4,
        addition_embed_type="text_time",
        addition_time_embed_dim=4,
        projection_class_embeddings_input_dim=6 * 4 + 16,
        use_linear_projection=True,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=16,
    )
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=CLIPTextModel(config),
        text_encoder_2=CLIPTextModelWithProjection(config),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler(),
        add_watermarker=False,
    )
    folder = tmp_path_factory.mktemp("tiny-sdxl") / "pipeline"
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def digit_clip_dir(tmp_path_factory) -> Path:
    """A tiny CLIP trained here on digit captions (about 10 s)."""
    from erasediff.data.digits import load_digits_split
    from tests.tiny_clip import save_clip, train_digit_clip

    model, tokenizer = train_digit_clip(load_digits_split()[0], progress=False)
    return save_clip(model, tokenizer, tmp_path_factory.mktemp("clip") / "digit-clip")


@pytest.fixture()
def model_copy(digits_folder: Path, tmp_path: Path) -> Path:
    """A private copy of the digits diffusers folder that a test may corrupt."""
    return Path(shutil.copytree(digits_folder / MODEL_DIR, tmp_path / "base"))


WEBHOOK_ENV = "ERASEDIFF_TEST_WEBHOOK"  # what a test request's `notify.webhook_env` names


@pytest.fixture(scope="module")
def webhook():
    """A local HTTP receiver for notifications, its URL in $ERASEDIFF_TEST_WEBHOOK: yields the JSON bodies POSTed to it
    (a real server on a free port; requests in the module's runs deliver to it)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ[WEBHOOK_ENV] = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield received
    finally:
        os.environ.pop(WEBHOOK_ENV, None)
        server.shutdown()
