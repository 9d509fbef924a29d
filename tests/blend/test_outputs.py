"""Shard inventory checks (checksums, damaged files), the Megatron and trainer outputs, and the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from corpusmill.curation.blend.inventory import BlendError, load_inventory
from corpusmill.curation.blend.megatron_args import write_megatron_args
from corpusmill.curation.blend.resolve import resolve
from corpusmill.curation.blend.spec import load_spec, parse_spec
from corpusmill.curation.blend.trainer_blend import read_trainer_blend, write_trainer_blend
from corpusmill.curation.blend.stage import BlendResolveOptions, format_resolution, resolution_table, resolve_blend
from corpusmill.curation.dataset import DatasetError
from corpusmill.curation.errors import ConfigError
from corpusmill.curation.executor import SerialExecutor
from corpusmill.curation.megatron.encoder import file_sha256
from corpusmill.curation.megatron.indexed import IndexedWriter, bin_path, idx_path
from corpusmill.curation.megatron.manifest import PrefixInfo, TokenizedManifest, write_tokenized_manifest
from corpusmill.curation.progress import RecordingProgress

SPECS = Path(__file__).resolve().parents[2] / "blend_specs"
SPLIT_BY = ["category", "language", "source", "split"]


def write_shards(
    root: Path, sha256: str, components: list[tuple[dict[str, str], list[int]]], split_by: list[str] = SPLIT_BY
) -> Path:
    """A tokenize output with the given components (keys, document lengths)."""
    prefixes = []
    for keys, lengths in components:
        name = ".".join(value for key, value in keys.items() if key != "split" or value != "train")
        with IndexedWriter(root / "shards" / name, np.dtype(np.uint16)) as writer:
            writer.add_documents(np.arange(sum(lengths)) % 500, lengths)
        size = bin_path(root / "shards" / name).stat().st_size
        prefixes.append(PrefixInfo(f"shards/{name}", keys, len(lengths), sum(lengths), 10 * sum(lengths), size, sha256))
    tokenizer = {"sha256": sha256, "vocab_size": 500, "eod_id": 2, "bos_id": None, "dtype": "uint16"}
    write_tokenized_manifest(root, TokenizedManifest("tokenize", {}, tokenizer, split_by, prefixes))
    return root


def component(category: str, language: str, source: str, split: str = "train") -> dict[str, str]:
    return {"category": category, "language": language, "source": source, "split": split}


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "tok" / "tokenizer.model"
    path.parent.mkdir()
    path.write_bytes(b"stand-in for a model: only its checksum matters here")
    return path


@pytest.fixture
def shards(tmp_path: Path, model_file: Path) -> Path:
    return write_shards(
        tmp_path / "tokenized",
        file_sha256(model_file),
        [
            (component("english", "en", "web"), [4000] * 30),
            (component("english", "en", "web", "valid"), [4000] * 2),
            (component("multilingual", "de", "catalogs"), [3000] * 10),
            (component("multilingual", "fr", "catalogs"), [3000] * 5),
            (component("code", "python", "stdlib"), [5000] * 12),
        ],
    )


def test_shards_from_different_tokenizers_are_refused(tmp_path: Path, shards: Path, model_file: Path) -> None:
    other = write_shards(tmp_path / "other", "b" * 64, [(component("code", "c", "kernel"), [100, 200])])
    with pytest.raises(
        BlendError,
        match=r"different tokenizers: sha256 [0-9a-f]{12}\.\.\. for tokenized/english.*sha256 bbbbbbbbbbbb\.\.\. for other",
    ):
        load_inventory([shards, other])
    with pytest.raises(
        BlendError,
        match=r"--tokenizer has sha256 [0-9a-f]{12}\.\.\., but code\.c\.kernel were tokenized with bbbbbbbbbbbb",
    ):
        load_inventory([other], model_file)
    inventory = load_inventory([shards], model_file.parent)
    assert [p.name for p in inventory.prefixes][:2] == ["english.en.web", "english.en.web.valid"]
    assert inventory.prefixes[0].path == (shards / "shards" / "english.en.web").resolve()


def test_damaged_or_foreign_directories_are_refused(tmp_path: Path, shards: Path) -> None:
    prefix = shards / "shards" / "code.python.stdlib"
    bin_path(prefix).write_bytes(bin_path(prefix).read_bytes()[:-100])
    with pytest.raises(BlendError, match="changed after tokenize wrote them: re-run tokenize"):
        load_inventory([shards])
    idx_path(prefix).unlink()
    with pytest.raises(BlendError, match="no such index file"):
        load_inventory([shards])
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "manifest.json").write_text(json.dumps({"stage": "classify", "shards": []}))
    with pytest.raises(DatasetError, match="document dataset, not tokenized shards; run `corpusmill tokenize`"):
        load_inventory([tmp_path / "docs"])
    with pytest.raises(DatasetError, match="no tokenized.json"):
        load_inventory([tmp_path / "nowhere"])


def test_megatron_and_trainer_outputs_agree(tmp_path: Path, shards: Path, model_file: Path) -> None:
    utils = pytest.importorskip("megatron.core.datasets.utils")
    resolution = resolve(load_spec(SPECS / "nemotron4.yaml"), load_inventory([shards]), tokens=3e6)
    out = tmp_path / "blend"
    data_path, per_split = write_megatron_args(resolution, out)
    trainer_json = write_trainer_blend(resolution, out / "trainer.json")
    prefixes, weights = utils.get_blend_from_list(data_path.read_text().split())
    assert sum(weights) == pytest.approx(1, abs=1e-9)
    assert dict(zip(prefixes, weights)) == pytest.approx(
        {str(d.prefix.path): d.weight for d in resolution.splits["train"]}
    )
    split_args = json.loads(per_split.read_text())
    assert split_args["test"] is None
    assert utils.get_blend_from_list(split_args["train"]) == (prefixes, weights)
    assert utils.get_blend_from_list(split_args["valid"]) == (
        [str(shards.resolve() / "shards" / "english.en.web.valid")],
        [1.0],
    )
    stored = json.loads(trainer_json.read_text())
    assert stored["splits"]["train"][0]["prefix"] == "../tokenized/shards/english.en.web"
    assert stored["tokenizer"]["sha256"] == file_sha256(model_file) and stored["planned_tokens"] == 3e6
    blend = read_trainer_blend(trainer_json, model_file)
    assert [str(path) for path, _ in blend.splits["train"]] == prefixes
    assert [weight for _, weight in blend.splits["train"]] == pytest.approx(weights)
    model_file.write_bytes(b"another tokenizer")
    with pytest.raises(BlendError, match="train with the tokenizer the shards were made with"):
        read_trainer_blend(trainer_json, model_file)
    stored["splits"]["train"][0]["weight"] += 0.1
    trainer_json.write_text(json.dumps(stored))
    with pytest.raises(BlendError, match="train weights sum to"):
        read_trainer_blend(trainer_json)


def test_cli_prints_the_table_and_refuses_on_warnings_when_strict(
    tmp_path: Path, shards: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from corpusmill.pipelines.cli import main

    spec = str(SPECS / "nemotron4.yaml")
    assert main(["blend", "resolve", spec, "--shards", str(shards), "--tokens", "2M"]) == 0
    captured = capsys.readouterr()
    table = captured.out.splitlines()
    assert table[0] == "blend nemotron4, phase pretrain: 2M tokens (from --tokens), sequences of 4096"
    row = next(line.split() for line in table if line.startswith("code.python.stdlib"))
    assert row == ["code.python.stdlib", "code", "60K", "15.000%", "300K", "5"]
    assert "valid: 1 held-out prefixes" in captured.out
    assert "source `catalogs` is repeated" in captured.err and "source `stdlib` is repeated 5.00 epochs" in captured.err
    written = shards / "blends" / "nemotron4-pretrain"
    assert sorted(p.name for p in written.iterdir()) == ["_progress", "data_path.txt", "per_split.json", "trainer.json"]
    strict_out = tmp_path / "strict"
    argv = ["blend", "resolve", spec, "--shards", str(shards), "--tokens", "2M", "--strict", "--out", str(strict_out)]
    assert main(argv) == 2
    assert "warning(s) and --strict: nothing written" in capsys.readouterr().err and not strict_out.exists()
    assert main(["blend", "resolve", spec, "--shards", str(shards), "--phase", "continued"]) == 2
    assert "uses key `quality_bucket`" in capsys.readouterr().err


def test_continued_phase_over_quality_buckets_without_alignment_data(tmp_path: Path, model_file: Path) -> None:
    """The shipped spec's continued phase on shards split by quality_bucket, before any alignment
    data exists: it resolves, and says the alignment group's 5% was dropped."""

    def keys(category: str, language: str, source: str, bucket: str) -> dict[str, str]:
        return {**component(category, language, source), "quality_bucket": bucket}

    shards = write_shards(
        tmp_path / "tokenized",
        file_sha256(model_file),
        [
            (keys("english", "en", "web", "high"), [4000] * 10),
            (keys("english", "en", "web", "medium"), [4000] * 30),
            (keys("english", "en", "web", "low"), [4000] * 20),
            (keys("multilingual", "de", "catalogs", "medium"), [3000] * 10),
            (keys("code", "python", "stdlib", "low"), [5000] * 12),
        ],
        ["category", "language", "source", "quality_bucket", "split"],
    )
    options = BlendResolveOptions(
        spec=str(SPECS / "nemotron4.yaml"), shards=(str(shards),), phase="continued", tokens=1e6
    )
    progress = RecordingProgress()
    resolved = resolve_blend(options, executor=SerialExecutor(progress))
    spec_lines = (SPECS / "nemotron4.yaml").read_text().splitlines()
    alignment_line = spec_lines.index("      alignment:") + 1
    assert (
        f"warning: phases.continued.groups.alignment (line {alignment_line}) has no data: no prefix of these shards matches its "
        "selection (select {source: alignment}); its weight 5 (5.0% of the phase) is dropped and the other groups "
        "are renormalised to english 68.4%, multilingual 15.8%, code 15.8%"
    ) in progress.notes
    blend = read_trainer_blend(shards / "blends" / "nemotron4-continued" / "trainer.json")
    drawn = {path.name: weight for path, weight in blend.splits["train"]}
    english = 65 / 95  # high : medium : low = 3 : 1 : 0 inside it, whatever their sizes
    assert drawn == pytest.approx(
        {
            "english.en.web.high": english * 3 / 4,
            "english.en.web.medium": english / 4,
            "multilingual.de.catalogs.medium": 15 / 95,
            "code.python.stdlib.low": 15 / 95,
        }
    )
    assert "not drawn: weight 0 within group english" in next(
        line for line in format_resolution(resolved).splitlines() if line.startswith("english.en.web.low")
    )
    with pytest.raises(BlendError, match="--strict: nothing written"):
        resolve_blend(replace(options, strict=True, out=str(tmp_path / "strict")), executor=SerialExecutor())
    assert not (tmp_path / "strict").exists()


def test_table_for_a_spec_with_unselected_prefixes(shards: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = parse_spec("phases:\n  p:\n    groups:\n      code: {weight: 1}\n", "code_only.yaml")
    text = resolution_table(resolve(spec, load_inventory([shards]), tokens=6e4))
    assert "code.python.stdlib" in text and "100.000%" in text
    assert "multilingual.de.catalogs" in text and "not drawn: no group selects it" in text


def test_options_refuse_no_shards_and_a_nonpositive_token_count() -> None:
    with pytest.raises(ConfigError, match="--shards"):
        BlendResolveOptions(spec="s.yaml", shards=())
    with pytest.raises(ConfigError, match="--tokens 0.0: a token count must be positive"):
        BlendResolveOptions(spec="s.yaml", shards=("t",), tokens=0.0)
    assert BlendResolveOptions(spec="s.yaml", shards=("t",), tokens=2e7).tokens == 20_000_000
