"""The server's settings: normalised and checked once, at start-up."""

from __future__ import annotations

import dataclasses

import pytest

from dipseg.dip.presets import DEFAULT_PRESET
from dipseg.io import InputError
from dipseg.web import Settings, load_classes


def test_settings_are_normalised_and_frozen(tmp_path, web_folder):
    s = Settings(images_dir=web_folder, out_dir=tmp_path / "o" / ".." / "out",
                 fit_overrides={"iterations": 7, "working_size": None}, workers=2, queue_size=3)
    assert s.preset == DEFAULT_PRESET and s.out_dir == (tmp_path / "out").resolve()
    assert dict(s.fit_overrides) == {"iterations": 7}  # None keeps the preset's value
    assert s.preset_config.fit.iterations == 7 and s.preset_config.name == DEFAULT_PRESET
    assert (s.mode, s.capacity, s.threads, len(s.classes)) == ("folder", 5, 1, 21)
    assert Settings(out_dir=tmp_path).mode == "upload" and Settings(out_dir=tmp_path).threads is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.workers = 3


def test_a_request_may_name_any_preset_the_overrides_fit(tmp_path, monkeypatch):
    import dipseg.web.settings as settings_module
    from dipseg.dip.presets import PRESETS

    s = Settings(out_dir=tmp_path, preset="clicks", fit_overrides={"iterations": 7})
    assert list(s.preset_configs)[0] == "clicks" and set(s.preset_configs) == set(PRESETS)
    assert {p.fit.iterations for p in s.preset_configs.values()} == {7}
    assert s.config_for(None) == ("clicks", s.preset_config)
    assert s.config_for("lite") == ("lite", s.preset_configs["lite"])
    # labels that are clicks get the click preset unless the request names one
    fast = Settings(out_dir=tmp_path, fit_overrides={"iterations": 7})
    assert fast.config_for(None, clicks=True) == ("clicks", fast.preset_configs["clicks"])
    assert fast.config_for(None, clicks=False) == ("fast", fast.preset_config)
    assert fast.config_for("lite", clicks=True) == ("lite", fast.preset_configs["lite"])
    for bad in ("nope", "", 3, None.__class__):
        with pytest.raises(InputError, match="unknown preset"):
            s.config_for(bad)
    # a preset the server's overrides do not fit is left out, not an error at start-up
    real = settings_module.dipseg_config

    def picky(method, preset, overrides=None):
        if preset == "paper":
            raise ValueError("working_size does not fit this preset")
        return real(method, preset, overrides)

    monkeypatch.setattr(settings_module, "dipseg_config", picky)
    assert "paper" not in Settings(out_dir=tmp_path).preset_configs


@pytest.mark.parametrize("kwargs, message", [
    ({"workers": 0}, "workers"),
    ({"queue_size": -1}, "queue_size"),
    ({"max_pixels": 1}, "positive"),
    ({"warm_fraction": 0}, "warm_fraction"),
    ({"preset": "no-such-preset"}, "unknown preset"),
    ({"fit_overrides": {"no_such_option": 1}}, "no_such_option"),
    ({"classes": ("only-one",)}, "at least 2"),
    ({"classes": ("a", "a")}, "twice"),
    ({"token": "short"}, "16 characters"),
    ({"body_timeout": 0}, "body_timeout"),
    ({"max_fit_pixels": 0}, "positive"),
    ({"max_json_bytes": 0}, "positive"),
])
def test_bad_settings_are_refused(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Settings(out_dir=tmp_path, **kwargs)


def test_bad_folders_are_input_errors(tmp_path, web_folder):
    with pytest.raises(InputError, match="not found"):
        Settings(images_dir=tmp_path / "missing", out_dir=tmp_path / "o")
    with pytest.raises(InputError, match="must differ"):
        Settings(images_dir=web_folder, out_dir=web_folder)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="must be a folder"):
        Settings(out_dir=tmp_path / "file")


def test_load_classes(tmp_path):
    f = tmp_path / "classes.txt"
    f.write_text("# my classes\nsky\n\n tree \nroad\n")
    assert load_classes(f) == ("sky", "tree", "road")
    f.write_bytes(b"\xff\xfe")
    with pytest.raises(InputError, match="UTF-8"):
        load_classes(f)


def test_every_server_has_its_own_token(tmp_path):
    a, b = Settings(out_dir=tmp_path), Settings(out_dir=tmp_path)
    assert len(a.token) >= 16 and a.token != b.token
    assert a.token not in repr(a) and not a.require_token  # never printed in logs
