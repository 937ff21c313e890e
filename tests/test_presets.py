"""Presets: every shipped file validates; bad files name the file and the field."""

from __future__ import annotations

import pytest

from qbdi.errors import PresetError
from qbdi.presets import cc_table, list_presets, load_named_preset, load_preset
from qbdi.settings import Preset, changed


def test_the_required_presets_ship_and_validate():
    assert {"default", "paper-256", "free"} <= set(list_presets())
    for name in list_presets():
        assert isinstance(load_preset(name), Preset)
    assert load_preset("paper-256").improviser.budget_bits == 256
    assert load_preset("free").improviser.mode == "free"


def test_the_shipped_presets_share_one_control_mapping_whose_programs_exist():
    mapping = load_preset("default").controls
    assert all(load_preset(name).controls == mapping for name in list_presets())
    assert mapping.cc.bound() == {"bits": 1, "threshold": 74}
    assert mapping.programs == ["default", "paper-256", "free"]
    assert all(name in list_presets() for name in mapping.programs)


@pytest.mark.parametrize(("text", "field"), [
    ("tempo_bpm = 5.0", "tempo_bpm"),
    ("tempo_bpm = nan", "tempo_bpm"),
    ("tempo = 120.0", "tempo"),
    ('tempo_bpm = "fast"', "tempo_bpm"),
    ("[improviser]\nbudget_bits = -4", "improviser"),
    ('[improviser]\nmode = "loud"', "improviser.mode"),
    ("[improviser]\nthreshold = 1.0", "improviser.threshold"),
    ("[improviser]\nbits = 3", "improviser.bits"),
    ("[playing]\nmidi_channel = 17", "playing.midi_channel"),
    ("[playing]\ninput_channel = 0", "playing.input_channel"),
    ("[playing]\ninput_channel = \"omni\"", "playing.input_channel"),
    ('[playing]\nvelocity = "loud"', "playing.velocity"),
    ("[controls.cc]\nbits = 120", "controls.cc.bits"),
    ("[controls.cc]\nthreshold = -1", "controls.cc.threshold"),
    ('[controls.cc]\nbits = "mod wheel"', "controls.cc.bits"),
    ("[controls.cc]\ntempo = 3", "controls.cc.tempo"),
    ("[controls.cc]\nbits = 21\nthreshold = 21", "controls.cc: Value error, CC 21 is bound to "
                                                "both bits and threshold"),
    ("[controls]\nchannel = 17", "controls.channel"),
    ('[controls]\nprograms = ["default", "../secret"]', "controls.programs.1"),
    ('[controls]\nprograms = "default"', "controls.programs"),
    ("[controls.notes]\npanic = 36", "controls: Value error, notes are bound, so "
                                     "notes_channel"),
    ("[controls]\nnotes_channel = 10\n[controls.notes]\nbits = 36", "controls.notes.bits"),
    ("[controls]\nnotes_channel = 10\n[controls.notes]\npanic = 128", "controls.notes.panic"),
])
def test_a_bad_preset_names_the_file_and_the_field(tmp_path, text, field):
    path = tmp_path / "mine.toml"
    path.write_text(text + "\n")
    with pytest.raises(PresetError) as caught:
        load_preset(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and field in message


def test_unreadable_or_missing_files_are_preset_errors(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("tempo_bpm = = 3")
    with pytest.raises(PresetError, match="not a readable TOML"):
        load_preset(broken)
    with pytest.raises(PresetError, match="shipped presets: default"):
        load_preset("nonesuch")


def test_changed_validates_and_leaves_the_original_untouched():
    preset = load_preset("default")
    assert changed(preset, improviser={"budget_bits": 3}).improviser.budget_bits == 3
    with pytest.raises(ValueError, match="budget_bits"):
        changed(preset, improviser={"budget_bits": -1})
    assert preset.improviser.budget_bits == 256


@pytest.mark.parametrize("name", ["/etc/passwd", "../default", "default.toml", "a/b", "..",
                                  "", "x" * 65, "-leading-dash", "con\x00"])
def test_by_name_loading_refuses_paths_and_odd_names(tmp_path, name):
    with pytest.raises(PresetError, match="by name"):
        load_named_preset(name, tmp_path)


def test_by_name_loading_looks_in_the_users_folder_first_then_the_shipped_ones(tmp_path):
    (tmp_path / "slow.toml").write_text("tempo_bpm = 61.0\n")
    (tmp_path / "free.toml").write_text("tempo_bpm = 62.0\n")  # shadows the shipped one
    assert load_named_preset("slow", tmp_path).tempo_bpm == 61.0
    assert load_named_preset("free", tmp_path).tempo_bpm == 62.0
    assert load_named_preset("free") == load_preset("free")
    assert load_named_preset("paper-256", tmp_path) == load_preset("paper-256")
    with pytest.raises(PresetError, match=r"no such preset \(shipped presets: default"):
        load_named_preset("slow")  # not shipped, no folder given
    with pytest.raises(PresetError, match=f"no such preset or in {tmp_path}"):
        load_named_preset("absent", tmp_path)
    (tmp_path / "bad.toml").write_text("[improviser]\nmode = 3\n")
    with pytest.raises(PresetError, match="bad.toml: improviser.mode"):
        load_named_preset("bad", tmp_path)


def test_learned_bindings_print_as_a_table_that_loads_back(tmp_path):
    learned = changed(load_preset("default"), controls={"cc": {"bits": 21, "panic": 64}})
    (tmp_path / "mine.toml").write_text(cc_table(learned.controls.cc) + "\n")
    assert load_preset(tmp_path / "mine.toml").controls.cc == learned.controls.cc
