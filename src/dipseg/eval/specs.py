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
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..api import METHODS, dipseg_config, parse_method
from ..dip.config import FitConfig, NetworkConfig, config_dict, given
from ..samplers import SAMPLERS

SCRIBBLES = "scribbles"
BOX_MODES = ("box", "box+clicks")
"""Label modes with boxes drawn from ground truth (:mod:`dipseg.eval.boxlabels`)."""
SCRIBBLE_SETS = ("set-1", "set-2")
DEFAULT_SCRIBBLE_SET = "set-1"

def parse_label_specs(specs: Sequence[str]) -> list[tuple[str, int | str]]:
    """Turn ``["uniform:1,10,100", "blobs:30", "scribbles"]`` into (sampler, budget) pairs.

    ``SAMPLER:N1,N2,...`` gives N pixels per class for a sampler of
    :data:`dipseg.samplers.SAMPLERS`; ``scribbles`` (or ``scribbles:set-1,set-2``) uses a
    dataset's real scribbles, the budget being the scribble set's name; ``box`` gives
    boxes drawn from ground truth (budget 0) and ``box+clicks:N1,...`` the boxes plus N
    pixels of each object (:mod:`dipseg.eval.boxlabels`).

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
    known = ", ".join([*SAMPLERS, SCRIBBLES, *BOX_MODES])
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
        if name == "box":
            if sep and rest.strip() not in ("", "0"):
                raise ValueError(f"--labels {spec!r}: box takes no budget; use box+clicks:N for boxes plus clicks")
            out.append(("box", 0))
            continue
        if name not in SAMPLERS and name != "box+clicks":
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
    network_overrides : tuple of (str, value)
        DIPSEG :class:`~dipseg.dip.config.NetworkConfig` overrides (sorted), from a sweep file.
    """

    label: str
    method: str
    preset: str | None
    overrides: tuple
    config_json: str
    config_id: str
    network_overrides: tuple = ()

    @property
    def is_dipseg(self) -> bool:
        return METHODS[self.method].is_dipseg

    @property
    def config(self) -> dict:
        return json.loads(self.config_json)

    @property
    def file_stem(self) -> str:
        return self.label.replace(":", "_")


def method_spec(text: str, preset: str | None = None, fit_overrides: dict | None = None,
                network_overrides: dict | None = None, label: str | None = None) -> MethodSpec:
    """One :class:`MethodSpec` from a method name (``dipseg:fast``, ``grabcut``) and its overrides.

    ``label`` names it in the summary (default: the method, ``NAME:PRESET`` for DIPSEG).

    Raises
    ------
    ValueError
        Unknown method or preset, a bad override, or overrides given to a baseline.
    """
    name, preset_name = parse_method(text, preset)
    fit_o, net_o = given(fit_overrides), given(network_overrides)
    if METHODS[name].is_dipseg:
        p = dipseg_config(name, preset_name, fit_o, net_o)
        config = config_dict(p.network, p.fit)
        default_label = f"{name}:{preset_name}"
    else:
        if fit_o or net_o:
            raise ValueError(f"method {name!r} takes no DIPSEG options, got {sorted(fit_o) + sorted(net_o)}")
        config = {"method": name, "options": _baseline_defaults(name)}
        default_label = name
    config_json = _canonical(config)
    return MethodSpec(label or default_label, name, preset_name, tuple(sorted(fit_o.items())), config_json,
                      config_id(config),
                      tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in net_o.items())))


def parse_methods(
    methods: str | Sequence[str | MethodSpec], preset: str | None = None, fit_overrides: dict | None = None
) -> list[MethodSpec]:
    """Parse ``"dipseg,grabcut"`` (or a list) into :class:`MethodSpec` objects.

    ``preset`` applies to DIPSEG methods without their own ``:PRESET``; ``fit_overrides``
    (e.g. ``{"iterations": 50}``) apply to DIPSEG methods only. Items that are already
    :class:`MethodSpec` (from :func:`parse_sweep`) are kept as they are.

    Raises
    ------
    ValueError
        Unknown method or preset, an empty list, or a bad override.
    """
    if isinstance(methods, str):
        methods = methods.split(",")
    items = [m if isinstance(m, MethodSpec) else m.strip() for m in methods]
    items = [m for m in items if m]
    if not items:
        raise ValueError("no --methods given; e.g. --methods dipseg,grabcut,random-walker")
    specs: list[MethodSpec] = []
    for item in items:
        if isinstance(item, MethodSpec):
            spec = item
        else:
            spec = method_spec(item, preset, fit_overrides if _is_dipseg(item) else None)
        if spec.label not in {s.label for s in specs}:
            specs.append(spec)
    return specs


def _is_dipseg(text: str) -> bool:
    m = METHODS.get(str(text).partition(":")[0])
    return m is not None and m.is_dipseg


SWEEP_KEYS = {"name", "method", "fit", "network"}
"""Keys of one ``[[methods]]`` entry of a sweep file."""


def parse_sweep(path: str | os.PathLike, preset: str | None = None,
                fit_overrides: dict | None = None) -> tuple[list[MethodSpec], list[str]]:
    """Read a sweep file: named method variants (and optionally label specs) for one bench run.

    A TOML file::

        labels = ["blobs:100", "uniform:10"]        # optional

        [[methods]]
        name = "no-box"                             # the name in the summary
        method = "dipseg:fast"                      # as for --methods (default "dipseg")
        fit = { box_prior = 0.0 }                   # FitConfig fields
        network = { channels_skip = [0, 0, 4, 4, 4] }   # NetworkConfig fields

    ``fit_overrides`` (e.g. ``--iterations``) apply to every DIPSEG entry under the entry's
    own ``fit``.

    Returns
    -------
    specs : list of MethodSpec
    labels : list of str
        The file's ``labels`` (empty when it has none).

    Raises
    ------
    ValueError
        Unreadable or malformed file, unknown keys, a bad method or option, a name that
        is not a plain word or is used twice, or two entries with the same configuration.
    """
    import tomllib

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read sweep file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"sweep file {path} is not valid TOML: {exc}") from None
    extra = set(data) - {"labels", "methods"}
    if extra:
        raise ValueError(f"sweep file {path}: unknown key(s) {sorted(extra)}; use 'labels' and [[methods]]")
    entries = data.get("methods")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise ValueError(f"sweep file {path}: needs at least one [[methods]] table")
    labels = data.get("labels", [])
    if isinstance(labels, str) or not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ValueError(f"sweep file {path}: labels must be a list of strings like \"blobs:100\"")
    specs: list[MethodSpec] = []
    for i, e in enumerate(entries, start=1):
        where = f"sweep file {path}, method {i}"
        bad = set(e) - SWEEP_KEYS
        if bad:
            raise ValueError(f"{where}: unknown key(s) {sorted(bad)}; allowed: {', '.join(sorted(SWEEP_KEYS))}")
        name = e.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"{where}: name must be a word of letters, digits and . _ + - : (got {name!r})")
        for key in ("fit", "network"):
            if not isinstance(e.get(key, {}), dict):
                raise ValueError(f"{where} ({name}): {key} must be a table of options")
        text = e.get("method", "dipseg")
        fit = (given(fit_overrides) | dict(e.get("fit", {}))) if _is_dipseg(text) else dict(e.get("fit", {}))
        try:
            spec = method_spec(str(text), preset, fit, dict(e.get("network", {})), label=name)
        except ValueError as exc:
            raise ValueError(f"{where} ({name}): {exc}") from None
        for other in specs:
            if other.label == spec.label:
                raise ValueError(f"{where}: the name {name!r} is used twice")
            if other.config_id == spec.config_id and other.method == spec.method:
                raise ValueError(f"{where}: {name!r} has the same configuration as {other.label!r}")
        specs.append(spec)
    return specs, labels


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+:-]*")


def _baseline_defaults(name: str) -> dict:
    """Keyword defaults of a baseline function (part of its config, so a changed default is a new job)."""
    out = {}
    for p in inspect.signature(METHODS[name].function()).parameters.values():
        if p.kind is p.KEYWORD_ONLY and p.name != "seed" and p.default is not p.empty:
            out[p.name] = p.default if isinstance(p.default, (int, float, str, bool, type(None))) else repr(p.default)
    return out


def config_id(config: dict) -> str:
    """First 12 hex digits of the SHA-1 of a method's configuration: part of the resume key.

    A DIPSEG configuration is hashed by the fields that differ from the
    :class:`~dipseg.dip.config.NetworkConfig` / :class:`~dipseg.dip.config.FitConfig`
    defaults, so a new field whose default leaves behaviour unchanged keeps every preset's
    id, and a resumed ``dipseg bench`` keeps the rows it has; changing any value, or a
    default, is a new configuration. Baseline configurations are hashed whole.
    """
    if set(config) == {"network", "fit"}:
        defaults = config_dict(NetworkConfig(), FitConfig())
        config = {part: {k: v for k, v in config[part].items()
                         if k not in defaults[part] or _canonical(v) != _canonical(defaults[part][k])}
                  for part in ("network", "fit")}
    return hashlib.sha1(_canonical(config).encode()).hexdigest()[:12]


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=list)


def label_seed(seed: int, image_id: str) -> int:
    """Seed of the label sampler for one image: depends on (seed, image id) only.

    ``SeedSequence([seed, crc32(image_id)])`` folded to a 32-bit integer, stable across
    Python versions, processes and machines (unlike ``hash()``).
    """
    crc = zlib.crc32(str(image_id).encode("utf-8"))
    return int(np.random.SeedSequence([int(seed), crc]).generate_state(1)[0])
