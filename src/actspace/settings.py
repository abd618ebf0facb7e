"""A job's settings: one validated config section as one frozen object.

The config schema holds every default and the workflow's validation fills them in, so a
settings class lists its fields without defaults and reads them from the section; a key
missing from the section is a bug (the section was not validated), reported by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from actspace.errors import ActspaceError

S = TypeVar("S", bound="SectionSettings")


class SectionSettings:
    """Mixin of a frozen dataclass built from a config section (``from_config``).

    ``OPTIONAL`` names the fields that the schema leaves without a default (None when the
    section lacks them); other keys of the section, such as its model list, are ignored.
    """

    OPTIONAL: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_config(cls: type[S], section: Mapping[str, Any]) -> S:
        names = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
        missing = [n for n in names if n not in section and n not in cls.OPTIONAL]
        if missing:
            raise ActspaceError(
                f"{cls.__name__}: the config section lacks {missing}; pass a section validated "
                "against workflow/schemas/config.schema.yaml (it holds the defaults)"
            )
        return cls(**{name: section.get(name) for name in names})
