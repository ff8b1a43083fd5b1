"""Process-wide offline settings: no telemetry, no hub downloads (nothing can be fetched at run time)."""

import os

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "ZENML_ANALYTICS_OPT_IN": "false",
    "ZENML_AUTO_OPEN_DASHBOARD": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "false",
}


def go_offline() -> None:
    """Set the offline variables unless the user set them already (must run before the imports that read them)."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
