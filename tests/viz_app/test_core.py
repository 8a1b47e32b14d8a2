"""The computations behind the app's pages (viz_app/core/): no streamlit, checked against the dense oracle
(refimpl/dense.py) and against direct computations written out here.

Each test says what it would catch.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from refimpl.attention import GLOBAL, LOCAL
from refimpl.dense import longformer_mask, outputs_to_dense
from viz_app.core import (attention_views as av, checkpoints, export, figures, forward as fw, global_tokens,
                          head_stats, links, masks, text as tx)


def tokenizer():
    from refimpl.io.default_model import default_checkpoint_dir
    from refimpl.io.tokenizer import LongformerTokenizer

    return LongformerTokenizer.from_pretrained(default_checkpoint_dir())


def fake_result(n=50, w=4, G=(0, 21), heads=2, seed=0, layers=1):
    """A ForwardResult with random rows that follow the model's layout rules (rows sum to 1 over visible keys)."""
    rng = np.random.default_rng(seed)
    kind = np.full(n, LOCAL)
    kind[list(G)] = GLOBAL
    local_all, glob_all = [], []
    for _ in range(layers):
        local = np.zeros((heads, n, len(G) + 2 * w + 1), np.float32)
        for i in np.flatnonzero(kind == LOCAL):
            keys = i + np.arange(2 * w + 1) - w
            visible = (keys >= 0) & (keys < n)
            visible[visible] &= kind[keys[visible]] == LOCAL
            row = np.concatenate([np.ones(len(G), bool), visible])
            p = rng.random((heads, row.sum())).astype(np.float32) ** 4  # peaked, like a trained head
            local[:, i, row] = p / p.sum(axis=1, keepdims=True)
        glob = rng.random((heads, n, len(G))).astype(np.float32)
        glob /= glob.sum(axis=1, keepdims=True)
        local_all.append(local)
        glob_all.append(glob)
    result = fw.ForwardResult(tuple(local_all), tuple(glob_all) if G else None, np.asarray(G, dtype=np.int64),
                              (2 * w,) * layers, np.arange(n), 0.0, "numpy")
    return result, kind


def dense_of(result, kind, layer=0):
    glob = None if result.glob is None else result.glob[layer][None]
    return outputs_to_dense(result.local[layer][None], glob, kind[None], result.w(layer))[0]  # (H, N, N)


# ---------------------------------------------------------------------------------------------------------------
# Head statistics against the dense oracle
# ---------------------------------------------------------------------------------------------------------------

def direct_stats(dense: np.ndarray, kind: np.ndarray) -> dict:
    """The four statistics written out on the (H, N, N) matrix, row by row."""
    H, N, _ = dense.shape
    i, j = np.arange(N)[:, None], np.arange(N)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(dense > 0, dense * np.log(dense), 0).sum(-1)  # (H, N)
    dist = (dense * np.abs(i - j)).sum(-1)
    local = kind == LOCAL
    return {"entropy": ent.mean(1), "distance": dist.mean(1),
            "global_share": dense[:, local][:, :, kind == GLOBAL].sum(-1).mean(1) if (kind == GLOBAL).any()
            else np.full(H, np.nan),
            "local_share": (dense * (np.abs(i - j) <= head_stats.LOCAL_REACH))[:, local].sum(-1).mean(1)}


@pytest.mark.parametrize("G", [(0, 21), (), (3,)])
def test_head_statistics_equal_a_direct_computation_on_the_dense_matrix(G):
    """Would catch: a statistic read from the wrong band slot or global column, global rows left out of the
    entropy or distance, or the global share counting the global queries."""
    result, kind = fake_result(n=40, w=5, G=G, heads=3, layers=2)
    stats = head_stats.head_stats(result)
    for layer in range(2):
        expected = direct_stats(dense_of(result, kind, layer), kind)
        for metric, values in expected.items():
            np.testing.assert_allclose(stats.values[metric][layer], values, atol=1e-6, err_msg=metric)


def test_head_statistics_of_the_real_model_on_a_short_text():
    """Would catch: the statistics disagreeing with the dense oracle on a pretrained model's attention."""
    from refimpl.io.default_model import default_checkpoint_dir
    from refimpl.model import LongformerModel

    model = LongformerModel.from_pretrained(default_checkpoint_dir())
    enc = tx.encode(tokenizer(), "Alice was beginning to get very tired of sitting by her sister.", "", 4096)
    result = fw.run_forward(model, enc.input_ids, [0, 5])
    stats = head_stats.head_stats(result)
    for layer in (0, 5):
        expected = direct_stats(dense_of(result, result.kind, layer), result.kind)
        for metric, values in expected.items():
            np.testing.assert_allclose(stats.values[metric][layer], values, atol=1e-5, err_msg=metric)
    rows = list(io.StringIO(stats.csv()))
    assert rows[0].strip() == "layer,head,entropy,distance,global_share,local_share" and len(rows) == 1 + 6 * 12
    profile, per_bin = head_stats.global_profile(result)
    assert profile.shape[0] == 6 and np.allclose(profile.sum(1), 1.0, atol=1e-5)  # each global row sums to 1


def test_forward_reports_progress_per_layer_and_leaves_the_model_alone():
    """Would catch: progress that is not per layer, or the progress hook left on the shared cached model."""
    from refimpl.io.default_model import default_checkpoint_dir
    from refimpl.model import LongformerModel

    model = LongformerModel.from_pretrained(default_checkpoint_dir())
    layers = list(model.layers)
    seen = []
    result = fw.run_forward(model, np.arange(1000, 1020), [0], progress=lambda done, total: seen.append((done, total)))
    assert seen == [(k, 6) for k in range(7)] and model.layers == layers
    plain = fw.run_forward(model, np.arange(1000, 1020), [0])
    np.testing.assert_array_equal(result.local[3], plain.local[3])


# ---------------------------------------------------------------------------------------------------------------
# Views of the attention against the dense layout
# ---------------------------------------------------------------------------------------------------------------

def test_rows_columns_and_spans_agree_with_the_dense_matrix():
    """Would catch: a view reading the band slots or global columns at the wrong keys; the key-side view (who
    attends to token j) missing the global queries or the band."""
    result, kind = fake_result()
    dense = dense_of(result, kind)  # (H, N, N)
    np.testing.assert_allclose(av.dense_head(result, 0, 1), dense[1], atol=1e-7)
    np.testing.assert_allclose(av.dense_head(result, 0, "mean"), dense.mean(0), atol=1e-6)
    for q in (10, 21, 0, 49):
        local_w, global_w = av.query_weights(result, 0, 1, q)
        np.testing.assert_allclose(local_w + global_w, dense[1, q], atol=1e-7)
    for k in (10, 21, 0, 49, 3):
        from_local, from_global = av.key_weights(result, 0, 1, k)
        np.testing.assert_allclose(from_local + from_global, dense[1, :, k], atol=1e-7, err_msg=f"key {k}")
        assert not from_local[kind == GLOBAL].any() and not from_global[kind == LOCAL].any()
    span = av.span_pairs(result, 0, 1, 15, 30)
    np.testing.assert_allclose(span.inside, dense[1, 15:30, 15:30], atol=1e-7)
    assert span.outside_keys.tolist() == [0]  # 21 lies inside the span
    np.testing.assert_allclose(span.to_outside[:, 0], dense[1, 15:30, 0], atol=1e-7)
    global_cols, band, block = av.band_view(result, 0, 0, rows=16)
    assert block == 4 and global_cols.shape == (13, 2) and band.shape == (13, 9)
    mosaic, cells, block = av.model_view(result)
    assert mosaic.shape == (cells, 2 * cells + 1) and block == 1


def test_overview_keeps_the_strongest_pair_of_each_cell_and_regions_are_exact():
    """Would catch: downsampling by mean or stride (a one-token diagonal or stripe fades), a strongest pair that
    is not where the maximum is, or a region that is not one cell per pair."""
    rng = np.random.default_rng(1)
    a = rng.random((300, 300)).astype(np.float32) * 0.01
    a[np.arange(300), np.arange(300)] = 0.3
    a[:, 123] = 0.7
    a[77, 200] = 0.9
    m = av.overview(a, cells=64)
    assert m.block == 5 and m.z.shape == (60, 60)
    assert (np.diag(m.z) >= 0.3).all() and (m.z[:, 123 // 5] >= 0.7).all()
    r, c = 77 // 5, 200 // 5
    assert (m.best_q[r, c], m.best_k[r, c], m.z[r, c]) == (77, 200, pytest.approx(0.9))
    assert all(a[m.best_q[i, j], m.best_k[i, j]] == m.z[i, j] for i in range(0, 60, 7) for j in range(0, 60, 11))
    reg = av.region(a, (70, 80), (195, 205))
    assert reg.exact and reg.z.shape == (11, 11) and reg.rows[0] == 70 and reg.cols[0] == 195
    np.testing.assert_array_equal(reg.z, a[70:81, 195:206])
    with pytest.raises(ValueError, match="at most"):
        av.region(a, (0, 299), (0, 10))
    assert av.region_around(300, 5, 64) == (0, 63) and av.region_around(300, 299, 64) == (236, 299)
    assert av.block_max(np.ones((10, 3)), 4, axes=(0,)).shape == (3, 3)
    diff, block = av.difference(a, a * 0, cells=64)
    assert diff.max() == pytest.approx(0.9)


def test_figures_name_tokens_in_hovers_and_keep_never_computed_pairs_blank():
    """Would catch: hovers that give fractional cell centres instead of tokens, linear colour painting zeros,
    markers far from a tiny matrix."""
    surfaces = [f"t{j}" for j in range(300)]
    a = np.zeros((300, 300), np.float32)
    a[10, 12] = 0.5
    m = av.overview(a, cells=100)
    fig = figures.matrix_figure(m, surfaces, [0], "linear")
    hover = fig.data[0].text
    assert hover[10 // 3][12 // 3].startswith("max 0.5: 10 't10' → 12 't12'")
    assert np.isnan(fig.data[0].z[0, 50])
    small = av.overview(np.full((3, 3), 1 / 3, np.float32))
    fig = figures.matrix_figure(small, ["[CLS]", "hi", "[SEP]"], [0])
    assert fig.data[0].text[1][2].startswith("1 'hi' → 2 '[SEP]'")
    assert list(fig.layout.xaxis.ticktext) == ["[CLS]", "hi", "[SEP]"]
    marker = next(t for t in fig.data if t.name == "global column")
    assert -2.5 < marker.y[0] < -0.5
    ticks = figures.log_ticks(3e-4, 0.2)
    assert ticks["tickvals"] == [1e-4, 1e-3, 1e-2, 1e-1, 1.0][:len(ticks["tickvals"])] or all(
        np.log10(v).is_integer() for v in ticks["tickvals"])


# ---------------------------------------------------------------------------------------------------------------
# Text, global tokens, exports, links, checkpoints
# ---------------------------------------------------------------------------------------------------------------

def test_sentence_starts_skip_quotes_and_brackets_and_search_finds_words():
    """Would catch: sentence starts on ' or ( instead of the first word, and a search that misses a word, a
    phrase or a subword."""
    tok = tokenizer()
    text = "One two. 'Three four!' (Five six?) Seven."
    enc = tx.encode(tok, text, "", 4096)
    assert [enc.tokens[p] for p in tx.sentence_starts(enc, text, "")] == ["one", "three", "five", "seven"]
    assert [enc.tokens[p] for p in tx.find(enc, text, "", "three")] == ["three"]
    assert [enc.tokens[p] for p in tx.find(enc, text, "", "five six")] == ["five"]
    enc2 = tx.encode(tok, "Longformer reads long documents.", "", 4096)
    assert [enc2.tokens[p] for p in tx.find(enc2, "Longformer reads long documents.", "", "##form")] == ["##form"]
    assert tx.find(enc, text, "", "  ") == []


def test_truncation_note_names_the_segment_that_was_cut():
    """Would catch: a pair's note saying the last tokens were cut when truncation cut the first (longer) text."""
    tok = tokenizer()
    question, context = "word " * 40, "short context."
    enc = tx.encode(tok, question, context, 20)
    note = tx.truncation_note(enc, question, context)
    assert "the text lost its last" in note and "second text" not in note
    enc = tx.encode(tok, "word " * 30, "", 10)
    assert enc.n == 10 and "lost its last 22 tokens" in tx.truncation_note(enc, "word " * 30, "")
    with pytest.raises(ValueError, match="empty"):
        tx.encode(tok, " \n", "", 4096)


def test_global_choice_keeps_typed_positions_and_spreads_the_preset_under_the_cap():
    """Would catch: the cap keeping the lowest positions (every sentence start after 255 gone), or dropping
    positions without a word."""
    tok = tokenizer()
    text = " ".join(f"Sentence number {k} ends here." for k in range(120))
    enc = tx.encode(tok, text, "", 4096)
    starts = tx.sentence_starts(enc, text, "")
    choice = global_tokens.choose("every sentence start", "0-199", enc, text, "", cap=256)
    assert len(choice.positions) == 256 and set(range(200)) <= set(choice.positions)
    kept_starts = [p for p in choice.positions if p >= 200]
    assert kept_starts[-1] == starts[-1]  # spread to the end of the document, not cut off at the cap
    assert "Dropped" in choice.warnings[-1] and "preset's" in choice.warnings[-1]
    choice = global_tokens.choose("first token", "2, 99999, x", enc, text, "")
    assert choice.positions == (0,) and any("not a token position" in w for w in choice.warnings)
    choice = global_tokens.choose("first token", "2, 99999", enc, text, "")
    assert choice.positions == (0, 2) and "out of range" in choice.warnings[0]
    assert global_tokens.parse_positions(" 3, 1-2 ; 7 ") == [1, 2, 3, 7]
    for bad in ("x", "3-1", "1.5"):
        with pytest.raises(ValueError):
            global_tokens.parse_positions(bad)


def test_layer_export_carries_tokens_and_character_offsets():
    """Would catch: an .npz whose arrays cannot be read back to words."""
    tok = tokenizer()
    text = "Down the Rabbit-Hole"
    enc = tx.encode(tok, text, "", 4096)
    result, _ = fake_result(n=enc.n, w=2, G=(0,))
    data = np.load(io.BytesIO(export.layer_npz(result, enc, 0)))
    assert list(data["tokens"]) == list(enc.tokens)
    s, e = data["offsets"][2]
    assert text[s:e] == data["token_text"][2] == enc.surfaces[2]
    assert data["local_attention"].shape == result.local[0].shape and int(data["window"]) == 4


def test_links_read_clicks_boxes_and_urls():
    """Would catch: a click or box read back wrongly, or a URL value that does not fit the model let through."""
    event = {"selection": {"points": [{"x": 1, "customdata": ["head", 3002]}], "box": []}}
    assert links.clicked(event, "head") == 3002 and links.clicked(event, "query") is None
    box = {"selection": {"points": [], "box": [{"x": [29.5, 9.5], "y": [19.5, 49.5]}]}}
    assert links.box_to_region(box, 40) == ((20, 39), (10, 29))
    assert links.signature(event) != links.signature(box)
    state = links.from_url({"layer": "5", "head": "11", "query": "40", "view": "Token", "sample": "nope"}, 6, 12,
                           tx.SAMPLES)
    assert state == {"layer": 5, "head": 11, "query": 40, "view": "Token"}
    assert links.from_url({"layer": "6", "head": "12", "query": "-1"}, 6, 12, tx.SAMPLES) == {}
    assert links.to_url({"layer": 1, "head": "mean", "query": None}) == {"layer": "1", "head": "mean"}


def test_checkpoint_roots(tmp_path):
    """Would catch: a path outside the roots accepted (also through '..' or a symlink), or localhost restricted."""
    root = tmp_path / "models"
    (root / "a").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")
    roots = checkpoints.parse_roots(str(root))
    checkpoints.check_allowed(root / "a", roots)
    for bad in (tmp_path / "elsewhere", root / "a" / ".." / ".." / "elsewhere", root / "link"):
        with pytest.raises(ValueError, match="outside"):
            checkpoints.check_allowed(bad, roots)
    checkpoints.check_allowed("/etc", None)
    assert checkpoints.parse_roots(None) is None and checkpoints.is_local("127.0.0.1")
    assert not checkpoints.is_local("0.0.0.0")


def test_pattern_masks_agree_with_the_dense_oracle():
    """Would catch: the page's masks (from band_keys/band_mask) drifting from the rules the dense oracle writes
    out independently (refimpl/dense.py)."""
    n, w = 40, 3
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    np.testing.assert_array_equal(masks.sliding(n, w), np.abs(i - j) <= w)
    for d in (2, 3):
        expected = (np.abs(i - j) <= d * w) & ((j - i) % d == 0)
        np.testing.assert_array_equal(masks.sliding(n, w, d), expected)
    glob = [0, 17, 39]
    kind = np.full((1, n), LOCAL)
    kind[0, glob] = GLOBAL
    np.testing.assert_array_equal(masks.global_and_sliding(n, w, glob), longformer_mask(kind, w)[0])
    with pytest.raises(ValueError, match="even"):
        masks.figure2(n, 5, 1, [])


def test_results_loading_and_slopes(tmp_path):
    """Would catch: the slope fit or the results reader getting the layout of the JSON wrong."""
    import json

    from viz_app.core import timing

    n = [256, 512, 1024, 2048]
    rows = [{"method": "dense", "n": k, "seconds": 1e-9 * k * k, "peak_bytes": 4.0 * k * k} for k in n]
    rows += [{"method": "numpy", "n": k, "seconds": 1e-6 * k, "peak_bytes": None} for k in n]
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"machine": "test", "results": rows}))
    records, meta = timing.load_results(path)
    assert meta == {"machine": "test"}
    slopes = timing.fits(timing.series(records))
    assert slopes[("dense", "seconds")] == pytest.approx(2.0) and slopes[("numpy", "seconds")] == pytest.approx(1.0)
    assert ("numpy", "peak_bytes") not in slopes
    path.write_text("[1, 2]")
    with pytest.raises(ValueError):
        timing.load_results(path)


# ---------------------------------------------------------------------------------------------------------------
# Dilated and autoregressive bands (issue #15): every view that reads band slots, against the dense oracle
# ---------------------------------------------------------------------------------------------------------------

def oracle_result(n=23, w=2, G=(), dilations=(1, 2, 3), autoregressive=False, seed=0):
    """A ForwardResult made by the reference's own band attention (passes 1-3) on random q, k, v, with one
    dilation per head, and the dense oracle's probabilities (H, N, N) on the same inputs."""
    from refimpl.attention import global_slots, sliding_window_attention
    from refimpl.dense import dense_attention

    H = len(dilations)
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((1, H, n, 4)).astype(np.float32) for _ in range(3))  # (B, H, N, D)
    kind = np.full((1, n), LOCAL)
    kind[0, list(G)] = GLOBAL
    global_index, n_global = global_slots(kind)
    _, local = sliding_window_attention(q, k, v, kind, global_index, n_global, w, True, list(dilations),
                                        autoregressive)  # (1, H, N, G + S)
    _, probs = dense_attention(q, k, v, q, k, v, kind, w, list(dilations), autoregressive)  # (1, H, N, N)
    glob = tuple([probs[0][:, list(G), :].transpose(0, 2, 1).astype(np.float32)]) if G else None  # (H, N, G)
    result = fw.ForwardResult((np.asarray(local[0], np.float32),), glob, np.asarray(G, dtype=np.int64), (2 * w,),
                              np.arange(n), 0.0, "numpy", dilations=(tuple(dilations),),
                              autoregressive=autoregressive)
    return result, probs[0]


@pytest.mark.parametrize("autoregressive, G", [(False, ()), (False, (0, 11)), (True, ())])
def test_dilated_and_causal_bands_read_back_as_the_dense_oracle(autoregressive, G):
    """Would catch: a view reading slot t as key i + t - W (dilation 1), or assuming 2W+1 slots in a causal layer,
    in the matrix, the rows, the columns, the mean over heads of different dilations, the statistics, the mosaic."""
    result, probs = oracle_result(G=G, autoregressive=autoregressive)
    H, n = result.num_heads, result.n
    assert result.local[0].shape[2] == len(G) + (3 if autoregressive else 5)
    offsets = result.offsets(0)
    assert offsets.tolist()[2] == ([-6, -3, 0] if autoregressive else [-6, -3, 0, 3, 6])
    for h in range(H):
        np.testing.assert_allclose(av.dense_head(result, 0, h), probs[h], atol=1e-6)
        for j in (0, 5, 11, n - 1):
            local_w, global_w = av.query_weights(result, 0, h, j)
            np.testing.assert_allclose(local_w + global_w, probs[h, j], atol=1e-6)
            from_local, from_global = av.key_weights(result, 0, h, j)
            np.testing.assert_allclose(from_local + from_global, probs[h, :, j], atol=1e-6)
    np.testing.assert_allclose(av.dense_head(result, 0, "mean"), probs.mean(0), atol=1e-6)
    np.testing.assert_allclose(sum(av.query_weights(result, 0, "mean", 7)), probs.mean(0)[7], atol=1e-6)
    if autoregressive:  # nothing after the query, in any head
        assert not np.triu(av.dense_head(result, 0, "mean"), 1).any()
    kind = result.kind
    stats = head_stats.head_stats(result)
    for metric, value in direct_stats(probs, kind).items():
        np.testing.assert_allclose(stats.values[metric][0], value, atol=1e-5, err_msg=metric)
    mosaic, cells, block = av.model_view(result)
    np.testing.assert_allclose(mosaic[:cells, (cells + 1) * 2:], probs[2], atol=1e-6)


def test_dilation_field_and_model_with_dilation_and_causal_windows():
    """Would catch: a per-head spec read wrongly, a bad spec crashing instead of a message, model_with dropping the
    dilation or the causal flag."""
    assert fw.parse_dilation("2", 4) == (2, 2, 2, 2)
    assert fw.parse_dilation(" 1, 1,2 ,2", 4) == (1, 1, 2, 2)
    for bad in ("0", "1,2", "a", "1,1,1,-1"):
        with pytest.raises(ValueError):
            fw.parse_dilation(bad, 4)
    from refimpl.config import LongformerConfig
    from refimpl.model import LongformerModel

    config = LongformerConfig(vocab_size=40, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=16, max_position_embeddings=64, attention_window=4)
    base = LongformerModel(config, seed=0)
    model = fw.model_with(base, "numpy", (4, 2), ((1, 2), (3, 3)), True)
    assert model.config.dilation(0) == (1, 2) and model.config.dilation(1) == (3, 3) and model.config.autoregressive
    assert base.config.autoregressive is False
    result = fw.run_forward(model, np.arange(3, 20), ())
    assert result.dilations == ((1, 2), (3, 3)) and result.autoregressive
    assert result.local[0].shape[2] == 3 and result.local[1].shape[2] == 2


def test_causal_pattern_and_the_explorer_settings_of_each_pattern():
    """Would catch: the causal pattern drifting from the dense oracle's rule (keys i - d t, t = 0..W), and a
    pattern's link carrying a window the explorer does not offer or the wrong dilation, causal flag or globals."""
    n, w, d = 30, 3, 2
    kind = np.full((1, n), LOCAL)
    np.testing.assert_array_equal(masks.sliding(n, w, d, True), longformer_mask(kind, w, d, True)[0])
    assert [p.key for p in masks.figure2(n, 6, d, [0])][-1] == "autoregressive"
    offered = fw.WINDOW_CHOICES
    assert masks.explorer_settings("dilated", 6, 3, "", offered)["window"] in (4, 8)
    assert masks.explorer_settings("sliding", 8, 3, "0", offered)["dilation"] == "1"
    causal = masks.explorer_settings("autoregressive", 8, 2, "0", offered)
    assert causal["autoregressive"] and causal["dilation"] == "2" and causal["global_manual"] == ""
    assert masks.explorer_settings("global_sliding", 8, 2, "0, 5", offered)["global_manual"] == "0, 5"
    with pytest.raises(ValueError):
        masks.explorer_settings("full", 8, 1, "", offered)


def test_dilated_band_kernel_is_timed_with_its_dilation(monkeypatch):
    """Would catch: the dilation sweep timing the undilated band (the dilation not passed to the backend)."""
    from viz_app.core import timing
    from refimpl.backends import get_backend

    seen = []
    backend = get_backend("numpy")
    original = type(backend).sliding_window_attention

    def spy(self, *args):
        seen.append(args[8])  # q, k, v, kind, global_index, n_global, w, output_attentions, dilation, autoregressive
        return original(self, *args)

    monkeypatch.setattr(type(backend), "sliding_window_attention", spy)
    monkeypatch.setattr(timing, "SETTLE_SECONDS", 0.0)
    records = timing.measure_dilations("numpy", (64, 128), (1, 3), repeat=1)
    assert [r["method"] for r in records] == ["numpy, d = 1", "numpy, d = 3"] * 2
    assert all(r["seconds"] > 0 and r["error"] is None for r in records)
    assert set(seen) == {1, 3}
