"""Manifests (plain dicts, as rendered or read from YAML) as the kubernetes client's typed
models, for the API calls whose body parameter is typed as the model.

The client would send a dict as it is; the model is what its signatures promise, and
:func:`as_model` checks that nothing is lost on the way (the model serialises back to
exactly the manifest), so a test never sends less than it wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def as_model(cls: type[M], manifest: Mapping[str, Any]) -> M:
    """``manifest`` as a ``cls`` (``V1ConfigMap``, ``V1ClusterRole`` ...), unchanged."""
    model = cls.model_validate(dict(manifest))
    back = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    if back != manifest:
        raise ValueError(f"{cls.__name__} does not hold {dict(manifest)} as written: {back}")
    return model
