import json

import pytest

from dipseg.eval.specs import parse_methods, parse_sweep

SWEEP = """
labels = ["blobs:30", "uniform:3"]

[[methods]]
name = "default"

[[methods]]
name = "no-box"
method = "dipseg:fast"
fit = { box_prior = 0.0 }

[[methods]]
name = "shallow"
fit = { iterations = 7 }
network = { channels_down = [8, 16], channels_up = [8, 16], channels_skip = [0, 4] }

[[methods]]
name = "gc"
method = "grabcut"
"""


def _write(tmp_path, text):
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


def test_sweep_file_gives_named_variants_with_their_configs(tmp_path):
    specs, labels = parse_sweep(_write(tmp_path, SWEEP))
    assert labels == ["blobs:30", "uniform:3"]
    assert [s.label for s in specs] == ["default", "no-box", "shallow", "gc"]
    default, nobox, shallow, gc = specs
    assert nobox.config["fit"]["box_prior"] == 0.0 and default.config["fit"]["box_prior"] > 0
    assert shallow.config["network"]["channels_down"] == [8, 16] and shallow.network_overrides[0][1] == (8, 16)
    assert shallow.config["fit"]["iterations"] == 7
    assert len({s.config_id for s in specs}) == 4
    assert gc.method == "grabcut" and not gc.overrides
    # the same text, the same resume keys
    assert [s.config_id for s in parse_sweep(_write(tmp_path, SWEEP))[0]] == [s.config_id for s in specs]
    # parse_methods keeps them as they are, after plain method names
    mixed = parse_methods(["random-walker", *specs])
    assert [s.label for s in mixed] == ["random-walker", "default", "no-box", "shallow", "gc"]


def test_command_line_overrides_apply_under_each_entrys_own(tmp_path):
    specs, _ = parse_sweep(_write(tmp_path, SWEEP), fit_overrides={"iterations": 3})
    its = {s.label: s.config.get("fit", {}).get("iterations") for s in specs}
    assert its == {"default": 3, "no-box": 3, "shallow": 7, "gc": None}


@pytest.mark.parametrize("text, message", [
    ("[[methods]]\nname = 'a'\nfit = { nope = 1 }", "bad DIPSEG option"),
    ("[[methods]]\nname = 'a'\nnetwork = { channels_down = [8] }", "same, non-zero length"),
    ("[[methods]]\nname = 'a'\n[[methods]]\nname = 'a'\nfit = { iterations = 5 }", "used twice"),
    ("[[methods]]\nname = 'a'\n[[methods]]\nname = 'b'", "same configuration"),
    ("[[methods]]\nname = 'gc'\nmethod = 'grabcut'\nfit = { iterations = 5 }", "takes no DIPSEG options"),
    ("[[methods]]\nname = 'a b'", "name must be a word"),
    ("[[methods]]\nname = 'a'\ncolour = 1", "unknown key"),
    ("labels = 'blobs:100'\n[[methods]]\nname = 'a'", "labels must be a list"),
    ("speed = 1", "unknown key"),
    ("labels = []", "at least one [[methods]]"),
    ("[[methods]\nname=", "not valid TOML"),
    ("[[methods]]\nname = 'x'\nmethod = 'dipseg:nope'", "unknown preset"),
])
def test_bad_sweep_files_are_refused_with_the_reason(tmp_path, text, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        parse_sweep(_write(tmp_path, text))


def test_missing_sweep_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read sweep file"):
        parse_sweep(tmp_path / "none.toml")


def test_network_overrides_reach_the_fit():
    import numpy as np

    import dipseg

    img = np.zeros((24, 24, 3), np.uint8)
    img[:, 12:] = 200
    labels = np.full((24, 24), -1)
    labels[5, 3], labels[5, 20] = 0, 1
    seg = dipseg.segment(img, labels, iterations=2, working_size=24,
                         network={"channels_down": [8, 8], "channels_up": [8, 8], "channels_skip": [2, 2]})
    assert json.loads(json.dumps(seg.metadata()))["config"]["network"]["channels_down"] == [8, 8]
    with pytest.raises(ValueError, match="takes no DIPSEG options"):
        dipseg.segment(img, labels, method="grabcut", network={"channels_down": [8]})


def test_config_id_ignores_fields_at_their_dataclass_default():
    from dataclasses import replace

    from dipseg.dip.config import FitConfig, NetworkConfig, config_dict
    from dipseg.eval.specs import config_id

    base = config_dict(NetworkConfig(), replace(FitConfig(), iterations=7))
    trimmed = {"network": base["network"], "fit": dict(base["fit"])}
    del trimmed["fit"]["lr"]  # a field at its default, as if it were added later: same id
    assert config_id(trimmed) == config_id(base)
    changed = config_dict(NetworkConfig(), replace(FitConfig(), iterations=8))
    assert config_id(changed) != config_id(base)
    other_default = {"network": base["network"], "fit": dict(base["fit"], lr=0.02)}
    assert config_id(other_default) != config_id(base)
    assert config_id({"method": "grabcut", "options": {}}) != config_id({"method": "random-walker", "options": {}})
