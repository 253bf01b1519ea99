"""CfgNode: nesting, printing, JSON, and command-line overrides with key and type checking."""

import pytest

from mingpt.cfgnode import CfgNode


def make():
    return CfgNode(
        system=CfgNode(seed=3407, work_dir="./out"),
        model=CfgNode(n_layer=3, dropout=0.1, model_type=None),
        trainer=CfgNode(learning_rate=5e-4, betas=(0.9, 0.95), compile=False),
    )


def test_overrides_are_parsed_as_python_literals():
    C = make()
    C.merge_from_args(["--model.n_layer=6", "--trainer.learning_rate=3e-4", "--trainer.betas=(0.8, 0.99)"])
    assert C.model.n_layer == 6 and C.trainer.learning_rate == 3e-4 and C.trainer.betas == (0.8, 0.99)


def test_unparseable_values_stay_strings_and_split_on_first_equals():
    C = make()
    C.merge_from_args(["--system.work_dir=./out/x=1", "--model.model_type=gpt-mini"])
    assert C.system.work_dir == "./out/x=1" and C.model.model_type == "gpt-mini"


def test_int_to_float_is_allowed_and_converted():
    C = make()
    C.merge_from_args(["--model.dropout=0"])
    assert C.model.dropout == 0.0 and isinstance(C.model.dropout, float)


def test_list_becomes_tuple_when_default_is_tuple():
    C = make()
    C.merge_from_dict({"trainer": {"betas": [0.5, 0.6]}})
    assert C.trainer.betas == (0.5, 0.6)


def test_unknown_key_names_key_and_suggests_closest():
    C = make()
    with pytest.raises(KeyError, match=r"model\.n_layers.*did you mean 'model\.n_layer'"):
        C.merge_from_args(["--model.n_layers=4"])
    with pytest.raises(KeyError, match="unknown config key 'nothing.at_all'"):
        C.merge_from_dict({"nothing.at_all": 1})


@pytest.mark.parametrize(
    "arg",
    ["--model.n_layer=2.5", "--model.n_layer=abc", "--trainer.compile=1", "--model.n_layer=True"],
)
def test_wrong_types_are_rejected(arg):
    with pytest.raises(TypeError, match="expects a value of type"):
        make().merge_from_args([arg])


@pytest.mark.parametrize("arg", ["model.n_layer=4", "--model.n_layer", 7])
def test_malformed_arguments(arg):
    with pytest.raises(ValueError, match="--section.key=value"):
        make().merge_from_args([arg])


def test_setting_a_section_to_a_value_is_rejected():
    with pytest.raises(TypeError, match="is a section"):
        make().merge_from_args(["--model=3"])


def test_none_means_unset_and_accepts_any_type():
    C = make()
    C.merge_from_args(["--model.model_type=None"])
    assert C.model.model_type is None


def test_dict_json_roundtrip_and_printing(tmp_path):
    C = make()
    path = tmp_path / "sub" / "config.json"
    C.save_json(path)
    loaded = CfgNode.load_json(path)
    assert loaded.to_dict() == {**C.to_dict(), "trainer": {**C.trainer.to_dict(), "betas": [0.9, 0.95]}}
    assert CfgNode.from_dict(C.to_dict()).to_dict() == C.to_dict()
    text = str(C)
    assert "model:\n    n_layer: 3" in text and "work_dir: './out'" in text


def test_copy_is_independent():
    C = make()
    D = C.copy()
    D.model.n_layer = 99
    assert C.model.n_layer == 3


def test_load_json_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config file"):
        CfgNode.load_json(tmp_path / "missing.json")


# ---------------------------------------------------------------------------------------------- hardening
@pytest.mark.parametrize("arg,key", [("--trainer.learning_rate=None", "trainer.learning_rate"),
                                     ("--trainer.compile=None", "trainer.compile"),
                                     ("--trainer.betas=None", "trainer.betas"),
                                     ("--model.n_layer=None", "model.n_layer")])
def test_none_is_rejected_where_the_default_is_not_none(arg, key):
    with pytest.raises(TypeError, match=rf"'{key}' cannot be None: it expects a \w+ \(current value"):
        make().merge_from_args([arg])


def test_none_stays_allowed_for_keys_born_none_even_after_a_value_was_set():
    C = make()
    C.model.model_type = "gpt2"  # e.g. a preset set by the project; the key still documents None
    C.merge_from_args(["--model.model_type=None"])
    assert C.model.model_type is None
    D = C.copy()
    D.model.model_type = "gpt2"
    D.merge_from_dict({"model": {"model_type": None}})  # a copy keeps what may be None
    assert D.model.model_type is None and "_nullable" not in D.to_dict()["model"]


@pytest.mark.parametrize("arg", ["--trainer.learning_rate=float('nan')", "--trainer.learning_rate=nan",
                                 "--trainer.betas=(0.9, float('nan'))"])
def test_nan_is_never_a_setting(arg):
    C = make()
    if "float(" in arg:  # literal_eval cannot build nan; the value arrives through merge_from_dict instead
        key, _, text = arg[2:].partition("=")
        section, leaf = key.split(".")
        with pytest.raises(ValueError, match=r"got nan"):
            C.merge_from_dict({section: {leaf: eval(text)}})
    else:  # "nan" on the command line is the string 'nan': a type error naming the key
        with pytest.raises(TypeError, match="trainer.learning_rate"):
            C.merge_from_args([arg])


@pytest.mark.parametrize("value", [(0.9,), (0.9, 0.95, 0.99), ("a", 0.95)])
def test_a_tuple_default_fixes_length_and_element_types(value):
    with pytest.raises((ValueError, TypeError), match=r"trainer\.betas"):
        make().merge_from_dict({"trainer": {"betas": value}})
    C = make()
    C.merge_from_args(["--trainer.betas=[0.8, 1]"])  # a list of the right length and kinds is fine
    assert C.trainer.betas == (0.8, 1.0) and isinstance(C.trainer.betas[1], float)
