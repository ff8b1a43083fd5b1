"""The request as a step parameter. ZenML records the JSON schema of each step's parameters in that step's
configuration and again in the pipeline's spec, on every run: ErasureRequest's full schema (every setting with its
description, 40 KB) was 0.7 MB of each run's ZenML metadata, in 15 copies. The steps still receive a validated
ErasureRequest; only the schema ZenML records is short (the request's reference is configs/ and README.md)."""

from typing import Annotated

from pydantic import WithJsonSchema

from erasediff.request.schema import ErasureRequest

RequestParameter = Annotated[
    ErasureRequest,
    WithJsonSchema({"type": "object", "title": "ErasureRequest", "description": "an erasure request (configs/*.yaml)"}),
]
