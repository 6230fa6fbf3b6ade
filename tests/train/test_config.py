from pathlib import Path

import pytest

from fwpipe.errors import ConfigError, InputNotFoundError
from fwpipe.train.config import PACKAGE_CONFIGS, TrainConfig, from_dict, load_config, to_dict, to_toml


def test_one_copy_of_the_presets_found_by_name_from_any_directory(tmp_path, monkeypatch):
    """The presets live in the package only (fwpipe/configs/); a file or directory in the working
    directory named like a preset does not shadow it unless it is a TOML file given by path."""
    assert {"rtx4070-40m.toml", "gpt2-124m.toml", "tiny-cpu.toml"} <= {p.name for p in PACKAGE_CONFIGS.glob("*.toml")}
    assert not (Path(__file__).resolve().parents[2] / "configs").exists()  # no second copy to drift
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny-cpu").mkdir()  # e.g. a run directory of that name
    assert load_config("tiny-cpu") == load_config(PACKAGE_CONFIGS / "tiny-cpu.toml")


def test_seed_preset_by_bare_name():
    cfg = load_config("rtx4070-40m")
    m = cfg.model
    assert (m.n_layer, m.n_head, m.n_embd, m.block_size, m.dropout, m.bias) == (12, 12, 384, 1024, 0.1, False)
    assert (cfg.batch_size, cfg.grad_accum, cfg.tokens_per_iter) == (16, 32, 524_288)
    assert (cfg.lr, cfg.min_lr, cfg.warmup_iters, cfg.beta1, cfg.beta2, cfg.weight_decay, cfg.compile) == (
        1e-3,
        1e-4,
        500,
        0.9,
        0.99,
        0.1,
        True,
    )
    assert load_config(PACKAGE_CONFIGS / "rtx4070-40m.toml") == cfg
    assert load_config("gpt2-124m").model.n_embd == 768


def test_overrides_bare_dotted_and_typed():
    cfg = load_config("tiny-cpu", ["lr=3e-4", "model.n_layer=3", "n_head=2", "compile=true", "warmup_iters=1e2"])
    assert (cfg.lr, cfg.model.n_layer, cfg.model.n_head, cfg.compile, cfg.warmup_iters) == (3e-4, 3, 2, True, 100)


def test_unknown_key_lists_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config("tiny-cpu", ["n_layr=3"])
    assert "n_layr" in e.value.message and "n_layer" in e.value.hint
    bad = tmp_path / "typo.toml"
    bad.write_text("batch_sise = 4\n[model]\nn_layer = 2\n")
    with pytest.raises(ConfigError) as e:
        load_config(bad)
    assert "batch_sise" in e.value.message and "batch_size" in e.value.hint
    bad.write_text("[model]\nn_embed = 64\n")
    with pytest.raises(ConfigError) as e:
        load_config(bad)
    assert "n_embed" in e.value.message and "n_embd" in e.value.hint


@pytest.mark.parametrize("item", ["lr=fast", "n_layer=2.5", "compile=maybe", "noequals", "n_embd=130"])
def test_bad_values(item):
    with pytest.raises(ConfigError):
        load_config("tiny-cpu", [item])


def test_missing_preset_names_the_presets():
    with pytest.raises(InputNotFoundError) as e:
        load_config("rtx9090")
    assert "tiny-cpu" in e.value.hint


def test_round_trips(tmp_path):
    cfg = load_config("rtx4070-40m", ["lr=2e-3"])
    assert from_dict(to_dict(cfg)) == cfg
    (tmp_path / "resolved.toml").write_text(to_toml(cfg))
    again = load_config(tmp_path / "resolved.toml")
    again.name = cfg.name
    assert again == cfg
    assert TrainConfig().model.vocab_size == 50304
