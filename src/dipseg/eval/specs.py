"""What a sweep runs: label specs (``uniform:1,10``), method specs, and the label seed rule.

**Identical labels.** The labels of a job depend only on (image id, sampler, budget,
seed): the sampler's RNG is seeded with :func:`label_seed` = a hash of ``seed`` and the
CRC-32 of the image id, never with the job's position, worker or executor. So every
method sees the same label map, in any order, on any machine.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..api import METHODS, dipseg_config, parse_method
from ..dip.config import config_dict, given
from ..samplers import SAMPLERS

SCRIBBLES = "scribbles"
SCRIBBLE_SETS = ("set-1", "set-2")
DEFAULT_SCRIBBLE_SET = "set-1"

def parse_label_specs(specs: Sequence[str]) -> list[tuple[str, int | str]]:
    """Turn ``["uniform:1,10,100", "blobs:30", "scribbles"]`` into (sampler, budget) pairs.

    ``SAMPLER:N1,N2,...`` gives N pixels per class for a sampler of
    :data:`dipseg.samplers.SAMPLERS`; ``scribbles`` (or ``scribbles:set-1,set-2``) uses a
    dataset's real scribbles, the budget being the scribble set's name.

    Raises
    ------
    ValueError
        Empty list, unknown sampler, missing or non-positive budgets, unknown scribble set.
    """
    if isinstance(specs, str):
        specs = [specs]
    if not specs:
        raise ValueError("no --labels given; e.g. --labels uniform:1,10,100 --labels blobs:30,100,300")
    out: list[tuple[str, int | str]] = []
    known = ", ".join([*SAMPLERS, SCRIBBLES])
    for spec in specs:
        text = spec.strip()
        name, sep, rest = text.partition(":")
        name = name.strip()
        if name == SCRIBBLES:
            sets = [s.strip() for s in rest.split(",")] if sep else [DEFAULT_SCRIBBLE_SET]
            for s in sets:
                if s not in SCRIBBLE_SETS:
                    raise ValueError(f"--labels {spec!r}: unknown scribble set {s!r}; choose {', '.join(SCRIBBLE_SETS)}")
                out.append((SCRIBBLES, s))
            continue
        if name not in SAMPLERS:
            raise ValueError(f"--labels {spec!r}: unknown sampler {name!r}; choose one of: {known}")
        if not sep or not rest.strip():
            raise ValueError(f"--labels {spec!r}: give pixels per class, e.g. {name}:1,10,100")
        for part in rest.split(","):
            part = part.strip()
            try:
                n = int(part)
            except ValueError:
                raise ValueError(f"--labels {spec!r}: {part!r} is not a whole number of pixels per class") from None
            if n < 1:
                raise ValueError(f"--labels {spec!r}: pixels per class must be >= 1, got {n}")
            out.append((name, n))
    seen: set = set()
    return [s for s in out if not (s in seen or seen.add(s))]


@dataclass(frozen=True)
class MethodSpec:
    """A method as the benchmark runs it: name, preset, overrides and the resulting configuration.

    Attributes
    ----------
    label : str
        Name in the summary: the method for baselines, ``NAME:PRESET`` for DIPSEG.
    method : str
        Base method name accepted by :func:`dipseg.segment`.
    preset : str or None
    overrides : tuple of (str, value)
        DIPSEG :class:`~dipseg.dip.config.FitConfig` overrides (sorted).
    config_json : str
        The full configuration as canonical JSON.
    config_id : str
        First 12 hex digits of its SHA-1 (part of the resume key).
    """

    label: str
    method: str
    preset: str | None
    overrides: tuple
    config_json: str
    config_id: str

    @property
    def is_dipseg(self) -> bool:
        return METHODS[self.method].is_dipseg

    @property
    def config(self) -> dict:
        return json.loads(self.config_json)

    @property
    def file_stem(self) -> str:
        return self.label.replace(":", "_")


def parse_methods(
    methods: str | Sequence[str], preset: str | None = None, fit_overrides: dict | None = None
) -> list[MethodSpec]:
    """Parse ``"dipseg,grabcut"`` (or a list) into :class:`MethodSpec` objects.

    ``preset`` applies to DIPSEG methods without their own ``:PRESET``; ``fit_overrides``
    (e.g. ``{"iterations": 50}``) apply to DIPSEG methods only.

    Raises
    ------
    ValueError
        Unknown method or preset, an empty list, or a bad override.
    """
    if isinstance(methods, str):
        methods = methods.split(",")
    names = [m.strip() for m in methods if m.strip()]
    if not names:
        raise ValueError("no --methods given; e.g. --methods dipseg,grabcut,random-walker")
    overrides = given(fit_overrides)
    specs: list[MethodSpec] = []
    for text in names:
        name, preset_name = parse_method(text, preset)
        dipseg = METHODS[name].is_dipseg
        if dipseg:
            p = dipseg_config(name, preset_name, overrides)
            config = config_dict(p.network, p.fit)
            label = f"{name}:{preset_name}"
        else:
            config = {"method": name, "options": _baseline_defaults(name)}
            label = name
        config_json = json.dumps(config, sort_keys=True, separators=(",", ":"), default=list)
        spec = MethodSpec(label, name, preset_name, tuple(sorted(overrides.items())) if dipseg else (),
                          config_json, hashlib.sha1(config_json.encode()).hexdigest()[:12])
        if spec.label not in {s.label for s in specs}:
            specs.append(spec)
    return specs


def _baseline_defaults(name: str) -> dict:
    """Keyword defaults of a baseline function (part of its config, so a changed default is a new job)."""
    out = {}
    for p in inspect.signature(METHODS[name].function()).parameters.values():
        if p.kind is p.KEYWORD_ONLY and p.name != "seed" and p.default is not p.empty:
            out[p.name] = p.default if isinstance(p.default, (int, float, str, bool, type(None))) else repr(p.default)
    return out


def label_seed(seed: int, image_id: str) -> int:
    """Seed of the label sampler for one image: depends on (seed, image id) only.

    ``SeedSequence([seed, crc32(image_id)])`` folded to a 32-bit integer, stable across
    Python versions, processes and machines (unlike ``hash()``).
    """
    crc = zlib.crc32(str(image_id).encode("utf-8"))
    return int(np.random.SeedSequence([int(seed), crc]).generate_state(1)[0])
