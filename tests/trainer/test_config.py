"""Training settings from YAML and --set, the run they resolve to, and the learning-rate schedule."""

import dataclasses

import pytest

from corpusmill.curation.errors import ConfigError
from corpusmill.trainer.config import RunPlan, global_batch_size, load_settings, resolve_run


def test_yaml_then_preset_then_set_win_in_that_order(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text(
        "preset: small\nlr: 1.0e-3\nmicro_batch_size: 2\nmodel: {num_layers: 6}\n"
        "phases:\n  - {tokens: 20B}\n  - {tokens: 1B, schedule: wsd}\n"
    )
    settings, model, phases = load_settings(
        str(config), "tiny", ["lr=3e-4", "model.num_layers=3", "phases.1.lr=1e-4", "compile=true", "fused_kernels=false"]
    )
    assert (settings.preset, settings.lr, settings.micro_batch_size, settings.compile) == ("tiny", 3e-4, 2, True)
    assert settings.fused_kernels is False and load_settings(None, None, [])[0].fused_kernels is None
    assert model == {"num_layers": 3}
    assert phases[0].tokens == 20e9 and (phases[1].tokens, phases[1].schedule, phases[1].lr) == (1e9, "wsd", 1e-4)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("learning_rate=1", "learning_rate"),
        ("lr=fast", "lr"),
        ("schedule=linear", "schedule"),
        ("model.vocab_size=7", "vocab_size"),
        ("phases.x.lr=1", "phases.N.FIELD"),
        ("phases.0.speed=1", "speed"),
        ("novalue", "KEY=VALUE"),
    ],
)
def test_bad_settings_name_the_key(override, named):
    with pytest.raises(ConfigError, match=named):
        load_settings(None, None, [override])


def test_resolved_run_takes_shards_tokenizer_and_blend_budgets(pipeline_shards):
    spec = resolve_run([str(pipeline_shards.pretrain), str(pipeline_shards.annealing)], None, "tiny", ["phases.1.lr=1e-4"])
    assert spec.model.vocab_size == 2000 and spec.tokenizer["model"].startswith(str(pipeline_shards.tokenizer))
    assert [phase.name for phase in spec.phases] == ["pretrain", "annealing"]
    assert [phase.tokens for phase in spec.phases] == [1e6, 1e6]  # blend resolve --tokens 1M
    assert [phase.warmup_steps for phase in spec.phases] == [100, 0] and spec.phases[1].lr == 1e-4
    with pytest.raises(ConfigError, match="only 1 phases"):
        resolve_run([str(pipeline_shards.pretrain)], None, None, ["phases.1.lr=1e-4"])


def test_schedules_warm_up_then_cosine_or_stable_then_decay(pipeline_shards):
    spec = resolve_run([str(pipeline_shards.pretrain)], None, "tiny", ["warmup_steps=10", "lr=1e-3", "min_lr=1e-4"])
    plan = RunPlan(spec, global_batch=8)  # 1e6 tokens / (8 x 128) -> 977 steps
    assert plan.total_steps == 977
    assert plan.lr_at(0) == pytest.approx(1e-4) and plan.lr_at(9) == pytest.approx(1e-3)
    assert plan.lr_at(10) == pytest.approx(1e-3) and plan.lr_at(976) == pytest.approx(1e-4)
    wsd = dataclasses.replace(spec, phases=(dataclasses.replace(spec.phases[0], schedule="wsd", decay_fraction=0.1),))
    plan = RunPlan(wsd, global_batch=8)
    assert plan.lr_at(10) == plan.lr_at(878) == 1e-3  # stable until the last 10% (98 steps)
    assert plan.lr_at(976) == pytest.approx(1e-4) and 1e-4 < plan.lr_at(930) < 1e-3


def test_global_batch_must_split_into_micro_batches_over_the_devices():
    settings, _, _ = load_settings(None, None, ["micro_batch_size=4", "global_batch_size=24"])
    assert global_batch_size(settings, 2) == 24
    with pytest.raises(ConfigError, match="multiple"):
        global_batch_size(settings, 4)
