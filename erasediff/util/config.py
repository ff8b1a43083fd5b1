"""Strict pydantic configs read from YAML: unknown keys and bad values become one error line naming the field."""

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from erasediff.util.errors import ErasediffError


class Strict(BaseModel):
    # Serialized by alias (`lambda`, not `lambda_`), so a dump validates back and merges key by key with YAML written by
    # hand.
    # No infinity or NaN anywhere: `lr: .inf` or a gate of `.inf` is a typo, never a setting.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True, allow_inf_nan=False)


def describe_validation_error(exc: ValidationError, prefix: str = "", prefixes: dict[str, str] | None = None) -> str:
    """One line naming every failing field, each under `prefix` (or the prefix `prefixes` gives its first key)."""
    parts = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")  # a validator's own message already says what is wrong
        loc = ".".join(str(x) for x in err["loc"])
        first = str(err["loc"][0]) if err["loc"] else ""
        parts.append(f"{(prefixes or {}).get(first, prefix)}{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


T = TypeVar("T", bound=BaseModel)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping (YAML would keep the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (line {key_node.start_mark.line + 1})", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _read_mapping(path: Path) -> dict:
    if not path.is_file():
        raise ErasediffError(f"config file not found: {path}")
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ErasediffError(f"config {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict):
        raise ErasediffError(f"config {path} must be a YAML mapping, got {type(raw).__name__}")
    return raw


def peek_key(path: str | Path, key: str) -> object:
    """One top-level value, to choose which config model validates the file."""
    return _read_mapping(Path(path)).get(key)


def load_yaml_config(path: str | Path, model: type[T]) -> T:
    """Parse and validate a YAML config; every failure becomes one ErasediffError line."""
    path = Path(path)
    raw = _read_mapping(path)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ErasediffError(f"config {path}: {describe_validation_error(exc)}") from exc
