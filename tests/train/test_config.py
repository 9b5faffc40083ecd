import pytest

from srlab.errors import SrlabError
from srlab.train.config import TrainConfig, apply_overrides, load_yaml, parse_set, validate


def test_overrides_nested_and_typed():
    config = TrainConfig()
    apply_overrides(config, parse_set(["optim.lr=1e-3", "model.args.channels=64", "data.batch_size=4", "optim.betas=[0.9, 0.999]"]))
    assert config.optim.lr == 1e-3 and config.model.args == {"channels": 64}
    assert config.data.batch_size == 4 and config.optim.betas == (0.9, 0.999)
    apply_overrides(config, {"optim": {"lr": 1}})  # ints are accepted for floats
    assert config.optim.lr == 1.0 and isinstance(config.optim.lr, float)


def test_unknown_keys_and_wrong_types_are_errors():
    with pytest.raises(SrlabError, match="unknown config key 'optim.lrr'"):
        apply_overrides(TrainConfig(), parse_set(["optim.lrr=1"]))
    with pytest.raises(SrlabError, match="unknown config key 'scael'"):
        apply_overrides(TrainConfig(), {"scael": 2})
    with pytest.raises(SrlabError, match="'data.batch_size' must be int"):
        apply_overrides(TrainConfig(), {"data": {"batch_size": "big"}})
    with pytest.raises(SrlabError, match="key=value"):
        parse_set(["optim.lr"])
    # YAML 1.1 reads an unquoted off as False: the message says to quote it, and quoted it works
    with pytest.raises(SrlabError, match="'amp' must be str, got False: YAML reads off, on, no and yes as booleans"):
        apply_overrides(TrainConfig(), parse_set(["amp=off"]))
    config = TrainConfig()
    apply_overrides(config, parse_set(["amp='off'"]))
    assert config.amp == "off"


def test_yaml_file(tmp_path):
    (tmp_path / "c.yaml").write_text("scale: 4\nschedule:\n  kind: step\n")
    config = TrainConfig()
    apply_overrides(config, load_yaml(tmp_path / "c.yaml"))
    assert config.scale == 4 and config.schedule.kind == "step"
    (tmp_path / "bad.yaml").write_text("scale: [4\n")
    with pytest.raises(SrlabError, match="not valid YAML"):
        load_yaml(tmp_path / "bad.yaml")
    with pytest.raises(SrlabError, match="does not exist"):
        load_yaml(tmp_path / "none.yaml")


def test_validate():
    config = TrainConfig()
    config.data.train_dir = config.data.val_dir = "x"
    validate(config)
    config.data.patch_size = 129
    with pytest.raises(SrlabError, match="not divisible by the scale 2"):
        validate(config)
    config.data.patch_size = 128
    config.schedule.kind = "linear"
    with pytest.raises(SrlabError, match="unknown schedule"):
        validate(config)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("val_every", 0, "val_every must be >= 1"),
    ("data.repeat", 0, "data.repeat must be >= 1"),
    ("data.val_max_images", -1, "data.val_max_images must be >= 0"),
    ("schedule.step_epochs", 0, "schedule.step_epochs must be >= 1"),
    ("optim.lr", -1.0, "learning rate"),
])
def test_validate_rejects_values_that_would_crash_or_do_nothing(key, value, message):
    config = TrainConfig()
    config.data.train_dir = config.data.val_dir = "x"
    apply_overrides(config, parse_set([f"{key}={value}"]))
    with pytest.raises(SrlabError, match=message):
        validate(config)


def test_mappings_merge_and_tuples_are_checked():
    config = TrainConfig()
    apply_overrides(config, {"model": {"args": {"channels": 8, "num_blocks": 1}}})
    apply_overrides(config, parse_set(["model.args.channels=16"]))
    assert config.model.args == {"channels": 16, "num_blocks": 1}
    with pytest.raises(SrlabError, match="must be a list of 2 numbers"):
        apply_overrides(config, parse_set(["optim.betas=[a, b]"]))


def test_override_layers_merge_at_every_depth():
    from srlab.train.config import merge_overrides

    base = {"epochs": 2, "model": {"args": {"channels": 8, "num_blocks": 1}}, "data": {"repeat": 3}}
    more = {"model": {"args": {"channels": 16}}, "data": 4}
    assert merge_overrides(base, more) == {"epochs": 2, "model": {"args": {"channels": 16, "num_blocks": 1}}, "data": 4}
    assert base["model"]["args"]["channels"] == 8  # the layers themselves are left as they were
