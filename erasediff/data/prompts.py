"""Prompt files in the I2P CSV format (prompt, evaluation_seed, evaluation_guidance, ...).

The I2P set itself cannot ship with the project; users pass their copy's path. Rows keep their own
seed and guidance so original and unlearned models are sampled identically.
"""

import csv
from dataclasses import dataclass
from pathlib import Path

from erasediff.util.errors import DataError

REQUIRED = ("prompt", "evaluation_seed")


@dataclass(frozen=True)
class PromptRow:
    prompt: str
    seed: int
    guidance: float | None
    label: int | None = None  # the class a prompt asks for (optional `class` column), for classifier-based metrics


def load_prompt_csv(path: str | Path, limit: int | None = None) -> list[PromptRow]:
    """Read and validate a prompt CSV; any problem is a DataError naming the file (and row)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(
                    f"prompt file {path} lacks column(s) {', '.join(missing)} (I2P format: prompt, evaluation_seed, "
                    "evaluation_guidance)"
                )
            rows = []
            for number, row in enumerate(reader, start=2):
                try:
                    guidance, label = row.get("evaluation_guidance"), row.get("class")
                    rows.append(
                        PromptRow(
                            row["prompt"].strip(),
                            int(float(row["evaluation_seed"])),
                            float(guidance) if guidance not in (None, "") else None,
                            int(label) if label not in (None, "") else None,
                        )
                    )
                except (TypeError, ValueError) as exc:
                    raise DataError(f"prompt file {path} line {number}: {exc}") from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read prompt file {path}: {exc}") from exc
    rows = [r for r in rows if r.prompt]
    if not rows:
        raise DataError(f"prompt file {path} has no prompts")
    return rows[:limit] if limit else rows
