"""Bios protocol: data loaders on small fixtures the tests write, the stratified split, cached encodings, the
steering methods' invariants, and the protocol end to end on synthetic representations."""

from __future__ import annotations

import importlib
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import transformers
from _recipes import load_recipe
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, pre_tokenizers

from steerfair import Gaussian
from steerfair.bios import (
    INLP,
    IdealTemplateSteering,
    ProtocolConfig,
    TextDataset,
    encode,
    encode_cached,
    excess_rms,
    load_bios,
    load_bug,
    noise_floor_rms,
    run_protocol,
    stratified_split,
)
from steerfair.evaluation.bios_report import plot_gaps, plot_tradeoff
from steerfair.privacy import randomized_response

transformers.logging.set_verbosity_error()


def _recipe(name: str) -> Any:
    """Import ``recipes/<name>.py`` as a module (recipes are scripts, not a package)."""
    return load_recipe(name)


# --------------------------------------------------------------------------------------------- data
def _bug_fixture(path: Path, seed: int = 0) -> Path:
    """A small file in BUG's format: 3 occupations, one non-occupation, one rare occupation."""
    rng = np.random.default_rng(seed)
    rows = []
    plan = {
        "nurse": (40, 12),
        "Nurse": (5, 0),
        "engineer": (10, 50),
        "teacher": (30, 30),
        "friend": (30, 30),
        "pilot": (3, 40),
    }
    for prof, (n_f, n_m) in plan.items():
        for gender, n in (("female", n_f), ("male", n_m)):
            for j in range(n):
                pron = "her" if gender == "female" else "his"
                word = prof if j % 3 else prof + "s"
                toks = ["The", word, "finished", pron, "shift", str(int(rng.integers(100))), "."]
                rows.append(
                    {
                        "Unnamed: 0": len(rows),
                        "sentence_text": " ".join(toks),
                        "tokens": str(toks),
                        "profession": prof,
                        "g": pron,
                        "profession_first_index": 1,
                        "g_first_index": 3,
                        "predicted gender": gender,
                        "stereotype": 0,
                        "distance": 2,
                        "num_of_pronouns": 1,
                        "corpus": "wikipedia",
                        "data_index": len(rows),
                    }
                )
    file = path / "full_BUG.csv"
    pd.DataFrame(rows).to_csv(file, index=False)
    return file


def test_bug_construction_masks_filters_and_caps(tmp_path: Path) -> None:
    file = _bug_fixture(tmp_path)
    ds = load_bug(path=file, min_per_group=10, max_per_class=None)
    # "Nurse" folds into "nurse"; "friend" is not an occupation; "pilot" has too few women
    assert list(ds.classes) == ["engineer", "nurse", "teacher"]
    stats = {r["class"]: r for r in ds.statistics()}
    assert stats["nurse"]["n"] == 57 and stats["nurse"]["n_female"] == 45
    for text, label in zip(ds.texts, ds.labels, strict=True):
        assert not re.search(rf"\b{label}", text, flags=re.IGNORECASE), text
        assert "person" in text
    capped = load_bug(path=file, min_per_group=10, max_per_class=24)
    cstats = {r["class"]: r for r in capped.statistics()}
    for c, r in cstats.items():
        assert r["n"] == min(24, stats[c]["n"])
        assert min(r["n_female"], r["n"] - r["n_female"]) >= 10  # the floor per gender
    # the share of women moves towards 1/2 only where the floor binds
    assert cstats["teacher"]["pct_female"] == pytest.approx(0.5)


def test_bug_rejects_bad_options(tmp_path: Path) -> None:
    file = _bug_fixture(tmp_path)
    with pytest.raises(ValueError, match="min_per_group"):
        load_bug(path=file, min_per_group=0)
    with pytest.raises(ValueError, match="max_per_class"):
        load_bug(path=file, min_per_group=10, max_per_class=15)
    with pytest.raises(ValueError, match="fewer than 2 occupations"):
        load_bug(path=file, min_per_group=45)
    with pytest.raises(FileNotFoundError):
        load_bug(path=tmp_path / "missing.csv")


def _bios_records(n: int = 12) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "hard_text": [f"bio number {i}" for i in range(n)],
            "profession": [i % 28 for i in range(n)],
            "gender": [i % 2 for i in range(n)],
        }
    )


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_bios_local_files_decode_hub_codes(tmp_path: Path, fmt: str) -> None:
    df = _bios_records()
    file = tmp_path / f"dev.{fmt}"
    {"parquet": lambda: df.to_parquet(file), "jsonl": lambda: df.to_json(file, orient="records", lines=True),
     "csv": lambda: df.to_csv(file, index=False)}[fmt]()  # fmt: skip
    ds = load_bios("dev", path=tmp_path)
    assert len(ds) == 12 and ds.texts[3] == "bio number 3"
    assert ds.labels[0] == "accountant" and ds.labels[6] == "dentist"  # alphabetical index order
    assert list(ds.groups[:2]) == ["male", "female"]  # 0 = male, 1 = female


def test_bios_refuses_pickles_and_bad_fields(tmp_path: Path) -> None:
    (tmp_path / "train.pickle").write_bytes(b"not read")
    with pytest.raises(ValueError, match="pickle"):
        load_bios("train", path=tmp_path)
    pd.DataFrame({"text": ["a"], "p": [1]}).to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(ValueError, match="lacks the fields"):
        load_bios("test", path=tmp_path)
    with pytest.raises(ValueError, match="unknown split"):
        load_bios("validation", path=tmp_path)
    bad = _bios_records().assign(gender=[5] * 12)
    bad.to_csv(tmp_path / "dev.csv", index=False)
    with pytest.raises(ValueError, match="gender codes"):
        load_bios("dev", path=tmp_path)


def test_bios_hub_offline_gives_a_clear_error() -> None:
    with pytest.raises(ConnectionError, match="BUG stand-in"):
        load_bios("dev")


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**16), st.integers(2, 5), st.integers(20, 120))
def test_stratified_split_partitions_every_cell(seed: int, m: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, m, n).astype(str)
    g = np.where(rng.random(n) < 0.4, "female", "male")
    parts = stratified_split(y, g, (0.65, 0.1, 0.25), seed=seed)
    allrows = np.concatenate(parts)
    assert np.array_equal(np.sort(allrows), np.arange(n))  # disjoint and complete
    for cell in set(zip(y, g, strict=True)):
        size = np.sum((y == cell[0]) & (g == cell[1]))
        got = [np.sum((y[p] == cell[0]) & (g[p] == cell[1])) for p in parts]
        want = np.diff(np.round(np.array([0, 0.65, 0.75, 1.0]) * size))
        assert got == list(want)


def test_text_dataset_validation_and_fingerprint() -> None:
    ds = TextDataset(("a b", "c"), ["x", "y"], ["female", "male"])
    assert ds.fingerprint() == TextDataset(("a b", "c"), ["x", "y"], ["female", "male"]).fingerprint()
    assert ds.fingerprint() != TextDataset(("a b", "c"), ["x", "y"], ["male", "male"]).fingerprint()
    with pytest.raises(ValueError, match="one entry per text"):
        TextDataset(("a",), ["x", "y"], ["f"])
    with pytest.raises(ValueError, match="at least one text"):
        TextDataset((), [], [])


# ---------------------------------------------------------------------------------------- encoding
WORDS = [f"w{i}" for i in range(30)]


def _tiny(kind: str, seed: int = 0) -> tuple[torch.nn.Module, transformers.PreTrainedTokenizerFast]:
    vocab = ["[PAD]", "[UNK]", "[EOS]", *WORDS]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="[UNK]", eos_token="[EOS]", pad_token="[PAD]"
    )
    torch.manual_seed(seed)
    if kind == "gpt2":
        model = transformers.GPT2Model(transformers.GPT2Config(n_layer=3, n_embd=16, n_head=2, vocab_size=len(vocab)))
    else:
        model = transformers.BertModel(
            transformers.BertConfig(
                hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32, vocab_size=len(vocab)
            )
        )
    return model.eval(), tok


@pytest.mark.parametrize("kind", ["gpt2", "bert"])
@pytest.mark.parametrize("pooling", ["mean", "last", "cls"])
def test_encode_length_sorted_batches_equal_one_text_at_a_time(kind: str, pooling: str) -> None:
    model, tok = _tiny(kind)
    rng = np.random.default_rng(1)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 12)))) for _ in range(11)]
    batched = encode(model, tok, texts, layers=[0, -1], pooling=pooling, batch_size=4, progress=False)
    single = encode(model, tok, texts[:1], layers=[0, -1], pooling=pooling, batch_size=1, progress=False)
    assert sorted(batched) == [0, 2]
    for j in range(len(texts)):
        one = encode(model, tok, [texts[j]], layers=[0, -1], pooling=pooling, batch_size=1, progress=False)
        for layer in (0, 2):
            np.testing.assert_allclose(batched[layer][j], one[layer][0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(single[2][0], batched[2][0], rtol=1e-4, atol=1e-5)


def test_encode_rejects_bad_input() -> None:
    model, tok = _tiny("gpt2")
    with pytest.raises(ValueError, match="empty"):
        encode(model, tok, [], progress=False)
    with pytest.raises(ValueError, match="non-empty strings"):
        encode(model, tok, ["w1", "  "], progress=False)
    with pytest.raises(ValueError, match="pooling='all'"):
        encode(model, tok, ["w1"], pooling="all", progress=False)
    with pytest.raises(ValueError, match="out of range"):
        encode(model, tok, ["w1"], layers=[7], progress=False)


def test_encode_cache_round_trip_skips_the_model(tmp_path: Path) -> None:
    model, tok = _tiny("bert")
    texts = ["w1 w2 w3", "w4", "w5 w6"]
    first = encode_cached("tiny", texts, layers=[-1], cache_dir=tmp_path, model=(model, tok), progress=False)
    assert list(first) == [2] and len(list(tmp_path.glob("*.safetensors"))) == 1

    def explode(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("the cache should have been used")

    real_forward = model.forward
    model.forward = explode  # the same weights: the cache answers without running the model
    again = encode_cached("tiny", texts, layers=[2], cache_dir=tmp_path, model=(model, tok), progress=False)
    assert np.array_equal(again[2], first[2])  # bit-identical
    model.forward = real_forward
    other = encode_cached("tiny", texts[:2], layers=[2], cache_dir=tmp_path, model=(model, tok), progress=False)
    assert other[2].shape == (2, 16) and len(list(tmp_path.glob("*.safetensors"))) == 2
    from steerfair import AffineMap
    from steerfair.llm import steer

    with steer(model, AffineMap(2 * np.eye(16)), layers=1), pytest.raises(ValueError, match="steering hooks"):
        encode_cached("tiny", texts, layers=[1], cache_dir=tmp_path, model=(model, tok), progress=False)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2  # nothing steered was filed


def test_encode_cache_never_returns_stale_or_damaged_encodings(tmp_path: Path) -> None:
    """Another model filed under the same name, texts whose joined form collides, and a damaged file all returned
    the cached encodings before; now the model's weights and the length-prefixed texts key the cache, and a file
    whose checksum fails is encoded again (with a warning)."""
    from steerfair.llm.encode import encode

    model, tok = _tiny("bert")
    other_model, _ = _tiny("bert", seed=1)
    texts = ["w1 w2 w3", "w4", "w5 w6"]
    kw = {"layers": [1], "cache_dir": tmp_path, "progress": False}
    encode_cached("enc", texts, model=(model, tok), **kw)
    fresh = encode_cached("enc", texts, model=(other_model, tok), **kw)[1]
    np.testing.assert_array_equal(fresh, encode(other_model, tok, texts, layers=[1], progress=False)[1])
    a = encode_cached("enc", ["w1\x1ew2", "w3"], model=(model, tok), **kw)[1]
    b = encode_cached("enc", ["w1", "w2\x1ew3"], model=(model, tok), **kw)[1]
    np.testing.assert_array_equal(b, encode(model, tok, ["w1", "w2\x1ew3"], layers=[1], progress=False)[1])
    assert not np.array_equal(a, b)
    for file in tmp_path.glob("*.safetensors"):
        data = bytearray(file.read_bytes())
        data[-3] ^= 0xFF  # one flipped byte in the array
        file.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="checksum mismatch"):
        again = encode_cached("enc", texts, model=(other_model, tok), **kw)[1]
    np.testing.assert_array_equal(again, fresh)


# ----------------------------------------------------------------------------------------- methods
def _biased(
    seed: int, n: int = 1500, d: int = 6, m: int = 3, scale_f: float = 1.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian classes whose female cells are shifted (differently per class) and scaled by ``scale_f``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, m, n)
    share = np.linspace(0.2, 0.8, m)
    g = np.where(rng.random(n) < share[y], "female", "male")
    mu = rng.normal(scale=1.0, size=(m, d))
    shift = rng.normal(size=(m, d))
    scale = np.where(g == "female", scale_f, 1.0)[:, None]
    X = mu[y] + scale * rng.normal(size=(n, d)) + (g == "female")[:, None] * shift[y]
    return X, y.astype(str), g


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 2**16))
def test_shared_target_steering_equalises_class_means_label_free(seed: int) -> None:
    X, y, g = _biased(seed, n=8000, d=4, m=3)
    fit = IdealTemplateSteering(target="shared", shrinkage=None, reg=None, random_state=seed).fit(X, y, g)
    Z = fit.transform(X, g)
    # label-free: the same seed gives the same rows whether or not y is passed
    again = IdealTemplateSteering(target="shared", shrinkage=None, reg=None, random_state=seed).fit(X, y, g)
    np.testing.assert_array_equal(again.transform(X, g, y=y), Z)
    for c in np.unique(y):
        rows = [(y == c) & (g == a) for a in ("female", "male")]
        diff = Z[rows[0]].mean(axis=0) - Z[rows[1]].mean(axis=0)
        se = np.sqrt(sum(Z[r].var(axis=0, ddof=1) / r.sum() for r in rows))
        assert np.all(np.abs(diff) <= 5 * se)  # equal class means across groups, up to sampling error
        raw = X[rows[0]].mean(axis=0) - X[rows[1]].mean(axis=0)
        assert np.max(np.abs(raw) / se) > 5  # ... where the raw rows differ far beyond it
    off = IdealTemplateSteering(target="shared", strength=0.0, random_state=seed).fit(X, y, g)
    np.testing.assert_array_equal(off.transform(X, g), X)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**16), st.sampled_from(["all", "affirmative"]))
def test_template_steering_makes_class_conditionals_identical_across_groups(seed: int, intervention: str) -> None:
    X, y, g = _biased(seed)
    st_ = IdealTemplateSteering(intervention=intervention, shrinkage=None, reg=None).fit(X, y, g)
    Z = st_.transform(X, g, y=y)
    for c in np.unique(y):
        fits = [Gaussian.fit(Z[(y == c) & (g == a)], reg=None) for a in ("female", "male")]
        np.testing.assert_allclose(fits[0].mean, fits[1].mean, atol=1e-8)
        np.testing.assert_allclose(fits[0].cov, fits[1].cov, atol=1e-8)
        i = list(st_.model_.classes).index(c)
        np.testing.assert_allclose(fits[0].mean, st_.solution_.template_means[i], atol=1e-8)
    if intervention == "affirmative":
        ref = st_.model_.groups[st_.solution_.reference]
        assert np.array_equal(Z[g == ref], X[g == ref])  # the reference group's cells are the templates


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**16), st.sampled_from(["all", "affirmative"]))
def test_template_steering_with_shared_class_covariances(seed: int, intervention: str) -> None:
    """share_covariance=1: within a class every group's map has the same linear part, the steered cell means
    are the template mean and the steered class covariance (pooled over groups) is the template covariance."""
    X, y, g = _biased(seed)
    st_ = IdealTemplateSteering(intervention=intervention, shrinkage=None, reg=None, share_covariance=1.0)
    st_.fit(X, y, g)
    Z = st_.transform(X, g, y=y)
    model, sol = st_.model_, st_.solution_
    for i, c in enumerate(model.classes):
        maps = [st_.cell_maps_[a][i] for a in range(model.n_groups)]
        if intervention == "all":
            np.testing.assert_allclose(maps[0].A, maps[1].A, rtol=1e-9, atol=1e-9)
        rows = y == c
        pooled = np.zeros((X.shape[1], X.shape[1]))
        for name in model.groups:
            sel = rows & (g == name)
            np.testing.assert_allclose(Z[sel].mean(axis=0), sol.template_means[i], atol=1e-8)
            pooled += sel.sum() / rows.sum() * np.cov(Z[sel], rowvar=False, bias=True)
        np.testing.assert_allclose(pooled, sol.template_covs[i], rtol=1e-8, atol=1e-8)
    with pytest.raises(ValueError, match="share_covariance"):
        IdealTemplateSteering(share_covariance=2.0)


def test_template_steering_in_a_subspace_leaves_the_complement_alone() -> None:
    X, y, g = _biased(3, d=8)
    st_ = IdealTemplateSteering(rank=3, shrinkage=None).fit(X, y, g)
    Z = st_.transform(X, g)
    B = st_.basis_
    resid = (Z - X) - (Z - X) @ B @ B.T
    assert np.max(np.abs(resid)) < 1e-10
    soft = np.column_stack([(g == "female") * 1.0, (g == "male") * 1.0])
    np.testing.assert_array_equal(st_.transform(X, soft), Z)  # one-hot probabilities = hard groups


def test_template_steering_from_private_groups() -> None:
    X, y, g = _biased(7)
    exact = IdealTemplateSteering(shrinkage=None).fit(X, y, g)
    raw = IdealTemplateSteering(shrinkage=None, group_epsilon=math.inf).fit(X, y, g)  # inf = the raw attribute
    for kw in ({}, {"y": y}):
        np.testing.assert_array_equal(raw.transform(X, g, **kw), exact.transform(X, g, **kw))
    # channel inversion on privatised reports recovers the non-private templates as n grows
    Xb, yb, gb = _biased(7, n=60_000)
    reports = randomized_response(gb, 2.0, seed=1, categories=["female", "male"])
    opts = {"shrinkage": None, "reference": "male"}  # the same gauge (the groups are about equally large)
    priv = IdealTemplateSteering(**opts, group_epsilon=2.0).fit(Xb, yb, reports)
    full = IdealTemplateSteering(**opts).fit(Xb, yb, gb)
    naive = IdealTemplateSteering(**opts).fit(Xb, yb, reports)
    for attr in ("template_means", "template_covs"):  # within a quarter of the naive fit's bias (measured: 1/6)
        err = [np.abs(getattr(f.solution_, attr) - getattr(full.solution_, attr)).max() for f in (priv, naive)]
        assert err[0] < 0.25 * err[1]
    # reports mix the group maps with P(A | x, y, report); no groups at all: P(A | x)
    Z = priv.transform(Xb[:200], reports[:200], y=yb[:200])
    assert Z.shape == (200, Xb.shape[1]) and np.all(np.isfinite(Z))
    assert np.all(np.isfinite(priv.transform(Xb[:200])))
    with pytest.raises(ValueError, match="group_epsilon"):
        IdealTemplateSteering(group_epsilon=0.0)


def test_inlp_projects_out_linear_gender_information() -> None:
    X, y, g = _biased(5, d=10)
    inlp = INLP(n_iterations=8).fit(X, y, g)
    P = inlp.map_.A
    np.testing.assert_allclose(P @ P, P, atol=1e-10)
    np.testing.assert_allclose(P, P.T, atol=1e-12)
    from sklearn.linear_model import LogisticRegression

    Z = inlp.transform(X)
    assert LogisticRegression().fit(X, g).score(X, g) > 0.75
    assert LogisticRegression().fit(Z, g).score(Z, g) < 0.65
    assert np.linalg.matrix_rank(np.eye(10) - P) == inlp.n_iterations_


# ---------------------------------------------------------------------------------------- protocol
def test_noise_floor_matches_its_formula() -> None:
    y = np.array(["a"] * 10 + ["b"] * 10)
    g = np.array(["female", "male"] * 10)
    pred = y.copy()
    pred[:4] = "b"  # class a: 6 of 10 right
    cfg = ProtocolConfig()
    want = np.sqrt(np.mean([0.6 * 0.4 * (1 / 5 + 1 / 5), 0.0]))
    assert noise_floor_rms(y, pred, g, cfg) == pytest.approx(want)


@given(rms=st.floats(0, 1), floor=st.floats(0, 1))
def test_excess_rms_removes_the_floor_in_quadrature(rms: float, floor: float) -> None:
    e = excess_rms(rms, floor)
    assert 0.0 <= e <= rms
    assert e == 0.0 if rms <= floor else e**2 + floor**2 == pytest.approx(rms**2, abs=1e-12)


def test_protocol_end_to_end_on_biased_representations(tmp_path: Path) -> None:
    X, y, g = _biased(11, n=2400, d=8, m=4, scale_f=1.0)
    cfg = ProtocolConfig(seeds=2, methods=("none", "steerfair", "mimic", "leace"))
    res = run_protocol(X, y, g, cfg, progress=False)
    json.dumps(res)  # serialisable
    for name in cfg.methods:
        for key in ("accuracy", "rms_tpr_gap", "gap_share_corr", "gender_probe_accuracy", "noise_floor_rms"):
            assert np.isfinite(res["methods"][name][key])
        assert set(res["methods"][name]["tpr_gaps"]) == set(np.unique(y))
        for rec in res["per_seed"]:  # excess RMS: the noise floor taken out of the measured RMS, per seed
            m = rec[name]["test_gold"]
            want = np.sqrt(max(m["rms_tpr_gap"] ** 2 - m["noise_floor_rms"] ** 2, 0.0))
            assert m["excess_rms_tpr_gap"] == pytest.approx(want, abs=1e-15)
            assert 0.0 <= m["excess_rms_tpr_gap"] <= m["rms_tpr_gap"]
    # class-specific shifts of the women's cells make the raw gaps large; one map per group (MiMiC) cannot undo
    # them, mapping every cell onto shared templates (test rows: posterior mixture of the cell maps) does
    assert res["methods"]["steerfair"]["rms_tpr_gap"] < 0.5 * res["methods"]["none"]["rms_tpr_gap"]
    assert res["methods"]["steerfair"]["rms_tpr_gap"] < res["methods"]["mimic"]["rms_tpr_gap"]
    assert res["methods"]["leace"]["gender_probe_accuracy"] < res["methods"]["none"]["gender_probe_accuracy"]


def test_protocol_oracle_labels_diagnostic() -> None:
    """With the occupation known at train and test time, the fitted cell maps leave only sampling noise."""
    X, y, g = _biased(5, n=3000, d=6, m=3, scale_f=1.0)
    cfg = ProtocolConfig(seeds=1, methods=("none", "steerfair"), train_mode="label", oracle_labels=True)
    res = run_protocol(X, y, g, cfg, progress=False)["methods"]
    assert res["steerfair"]["rms_tpr_gap"] < 0.5 * res["none"]["rms_tpr_gap"]
    plain = run_protocol(X, y, g, ProtocolConfig(seeds=1, methods=("none",)), progress=False)["methods"]
    assert plain["none"] == res["none"]  # the identity ignores labels: the diagnostic changes nothing else


def test_protocol_rejects_bad_input() -> None:
    X, y, g = _biased(0, n=200)
    with pytest.raises(ValueError, match="unknown methods"):
        ProtocolConfig(methods=("none", "magic"))
    with pytest.raises(ValueError, match="share_covariance"):
        ProtocolConfig(share_covariance=-0.5)
    with pytest.raises(ValueError, match="one occupation"):
        run_protocol(X[:10], y, g, ProtocolConfig(seeds=1), progress=False)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        run_protocol(bad, y, g, ProtocolConfig(seeds=1), progress=False)
    with pytest.raises(ValueError, match="must contain"):
        run_protocol(X, y, np.where(g == "female", "f", "m"), ProtocolConfig(seeds=1), progress=False)


def test_bios_command_writes_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``steerfair bios`` end to end on a BUG-format fixture with a tiny random encoder (no download)."""
    from steerfair import cli
    from steerfair.evaluation import bios_run

    model, tok = _tiny("bert")
    rng = np.random.default_rng(0)
    texts, labels, groups = [], [], []
    for c in range(3):
        for _ in range(60):
            gender = "female" if rng.random() < 0.3 + 0.2 * c else "male"
            texts.append(
                " ".join(rng.choice(WORDS[c * 10 : c * 10 + 10], size=5)) + (" w29" if gender == "female" else " w28")
            )
            labels.append(f"job{c}")
            groups.append(gender)
    ds = TextDataset(tuple(texts), labels, groups, "fixture")
    monkeypatch.setattr(bios_run, "load_text_data", lambda name, **kw: ds)
    monkeypatch.setattr(bios_run, "check_bios_source", lambda name: None)  # --data names the injected fixture
    # bios_run imports it from there when it encodes (`steerfair.llm.encode` the attribute is the function `encode`)
    encode_module = importlib.import_module("steerfair.llm.encode")

    real = encode_module.encode_cached
    monkeypatch.setattr(encode_module, "encode_cached", lambda *a, **k: real(*a, **{**k, "model": (model, tok)}))
    out = tmp_path / "bios"
    model.config.save_pretrained(tmp_path / "tiny")  # the command reads the depth from a local config first
    rc = cli.main(["bios", "--model", str(tmp_path / "tiny"), "--data", str(tmp_path), "--layer", "-1", "--seeds", "2",
                   "--cache-dir", str(tmp_path / "cache"), "--out", str(out)])  # fmt: skip
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["methods"]) == {"none", "steerfair", "mean_matching", "mimic", "leace"}
    assert all(0 <= res["methods"][m]["accuracy"] <= 1 for m in res["methods"])
    assert (out / "results.md").read_text().count("\n|") >= 6 and (out / "gaps.png").stat().st_size > 0
    # the summary recipe plots accuracy against the gap for one or more runs
    summary = _recipe("bios_summary")
    args = [str(out), str(out / "results.json"), "--titles", "a", "b", "--out", str(tmp_path / "t.png")]
    assert summary.main(args) == 0
    assert (tmp_path / "t.png").stat().st_size > 0
    with pytest.raises(SystemExit):
        summary.main([str(tmp_path / "missing")])
    with pytest.raises(ValueError, match="empty"):
        plot_tradeoff({}, tmp_path / "x.png")


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 2**16), st.sampled_from([0.05, 1.0]))
def test_softmax_regression_matches_scikit_learn(seed: int, C: float) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from steerfair.evaluation.bios_classifier import SoftmaxRegression

    X, y, _ = _biased(seed, n=400, d=5, m=3, scale_f=1.0)
    X = X * np.array([1.0, 10.0, 0.1, 1.0, 3.0]) + 2.0  # unequal scales: the standardisation matters
    w = np.random.default_rng(seed).uniform(0.5, 2.0, len(y))
    ours = SoftmaxRegression(C=C, max_iter=1000, tol=1e-10, dtype=torch.float64).fit(X, y, sample_weight=w)
    ref = make_pipeline(StandardScaler(), LogisticRegression(C=C, tol=1e-10, max_iter=5000))
    ref.fit(X, y, logisticregression__sample_weight=w / w.mean())
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=2e-4)
    assert list(ours.classes_) == list(ref.classes_)


def test_encode_and_load_model_arguments(tmp_path: Path) -> None:
    """A bare string was encoded character by character; ``max_length`` 0, -1 or 2.5 failed inside the tokenizer or
    blamed the text; ``load_model`` sent a missing local folder, a wrong-case alias or ``None`` to the hub."""
    from steerfair.llm import load_model
    from steerfair.llm.encode import encode

    model, tok = _tiny("bert")
    with pytest.raises(ValueError, match="texts must be a list of strings"):
        encode(model, tok, "hello", progress=False)
    for bad in (0, -1, 2.5):
        with pytest.raises((ValueError, TypeError), match="max_length must be"):
            encode(model, tok, ["w1 w2"], max_length=bad, progress=False)
    assert set(encode(model, tok, ["w1 w2", "w3"], layers="all", progress=False)) == {0, 1, 2}
    for name, message in ((None, "name must be"), (str(tmp_path / "nothing"), "no model folder at")):
        with pytest.raises(ValueError, match=message):
            load_model(name)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="causal must be"):
        load_model("minilm", causal="no")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dtype must be a torch dtype"):
        load_model("minilm", dtype="banana")  # type: ignore[arg-type]


def test_a_local_model_folder_saved_again_is_encoded_again(tmp_path: Path) -> None:
    """A local folder is keyed by its files (names, sizes, times), not by its path alone: a model saved again into
    it is encoded again instead of answering with the old encodings."""
    texts = ["w1 w2 w3", "w4", "w5 w6"]
    folder = tmp_path / "model"
    kw = {"layers": [1], "cache_dir": tmp_path / "cache", "progress": False}
    outs = []
    for seed in (0, 1):
        model, tok = _tiny("bert", seed=seed)
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        outs.append(encode_cached(str(folder), texts, **kw)[1])
        np.testing.assert_array_equal(outs[-1], encode_cached(str(folder), texts, **kw)[1])  # cached: the same
    assert not np.array_equal(outs[0], outs[1])


def test_protocol_configuration_and_text_subsets_are_checked(tmp_path: Path) -> None:
    """Labels are compared as text: integer genders and occupations, and exclude=, work; a cell without test rows
    is named; fractions, max_iter and boolean masks are checked or taken."""
    rng = np.random.default_rng(0)
    n = 900
    y = rng.integers(0, 3, n)
    g = rng.integers(0, 2, n)
    X = rng.normal(size=(n, 4)) + y[:, None] + 0.3 * g[:, None]
    cfg = ProtocolConfig(seeds=1, methods=("none",), rank=None, group_a=1, group_b=0, exclude=(2,))
    res = run_protocol(X, y, g, cfg, progress=False)
    assert set(res["methods"]["none"]["tpr_gaps"]) == {"0", "1"}  # occupation 2 excluded, given as an int
    assert ProtocolConfig(exclude="nurse").exclude == ("nurse",)  # one name, not its letters
    y2 = y.copy()
    y2[np.flatnonzero((y == 1) & (g == 1))[2:]] = 0  # occupation 1 keeps two rows of group 1: none in every split
    with pytest.warns(UserWarning, match=r"occupation\(s\) \['1'\] have no '1' or no '0' row"):
        run_protocol(X, y2, g, ProtocolConfig(seeds=1, methods=("none",), rank=None, group_a=1, group_b=0),
                     progress=False)  # fmt: skip
    for bad, match in (({"fractions": (0.8, 0.2)}, "three positive"), ({"max_iter": 0}, "max_iter"),
                       ({"seeds": True}, "seeds"), ({"group_a": "male"}, "must differ")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            ProtocolConfig(**bad)
    ds = TextDataset(("a", "b", "c"), np.array(["x", "y", "x"]), np.array(["female", "male", "male"]), "t")
    other = run_protocol(X, y, g, ProtocolConfig(seeds=1, methods=("mean_matching",), rank=None, group_a=1, group_b=0),
                         progress=False)  # fmt: skip
    assert plot_gaps(other, tmp_path / "gaps.png").stat().st_size > 0  # none of the default panels ran: its own
    assert ds.subset(ds.labels == "x").texts == ("a", "c")
    assert ds.subset([2, 0]).texts == ("c", "a")
    with pytest.raises(ValueError, match="one entry per row"):
        ds.subset(np.array([True, False]))
    with pytest.raises(ValueError, match="integer indices or a boolean mask"):
        ds.subset(np.array([0.5]))


def test_the_table_shows_a_spread_only_when_there_are_seeds_to_spread() -> None:
    """One seed has no spread: its table printed "± 0.0000" as if one had been measured."""
    from steerfair.evaluation.bios_report import markdown

    row = {"accuracy": 0.3, "accuracy_std": 0.0, "rms_tpr_gap": 0.16, "rms_tpr_gap_std": 0.0, "noise_floor_rms": 0.12,
           "excess_rms_tpr_gap": 0.1, "excess_rms_tpr_gap_std": 0.0, "gap_share_corr": None,
           "gender_probe_accuracy": 0.9}  # fmt: skip
    results = {"methods": {"none": row}, "methods_predicted_gender": {"none": row}}
    one = markdown({**results, "config": {"seeds": 1}})
    assert "±" not in one and "0.3000" in one and "| - |" in one
    assert "0.3000 ± 0.0000" in markdown({**results, "config": {"seeds": 3}})


@pytest.mark.parametrize("sign", ["signed", "absolute"])
def test_the_gap_share_correlation_is_that_of_the_reported_gaps(sign: str) -> None:
    """``--sign absolute`` reported absolute gaps but correlated the signed ones (1.0 where the reported gaps give
    0.0): the correlation is now of the gaps the run writes."""
    import warnings as _warnings

    from steerfair.evaluation.bios_protocol import ProtocolConfig, _evaluate
    from steerfair.metrics import gap_share_correlation

    tpr = {"female": [0.9, 0.3, 0.6, 0.5, 0.8, 0.2], "male": [0.3, 0.9, 0.6, 0.5, 0.2, 0.8]}
    ys, ps, gs = [], [], []
    for c in range(6):
        for gender, rates in tpr.items():
            k = int(round(rates[c] * 100))
            ys.append(np.full(100, f"o{c}"))
            gs.append(np.full(100, gender))
            ps.append(np.array([f"o{c}"] * k + [f"o{(c + 1) % 6}"] * (100 - k)))
    y, p, g = map(np.concatenate, (ys, ps, gs))
    share = {f"o{c}": s for c, s in enumerate([0.9, 0.1, 0.5, 0.5, 0.9, 0.1])}
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        out = _evaluate(y, p, g, share, ProtocolConfig(methods=("none",), sign=sign))
    assert all(v >= 0 for v in out["tpr_gaps"].values()) == (sign == "absolute")
    assert out["gap_share_corr"] == pytest.approx(gap_share_correlation(out["tpr_gaps"], share))
    assert out["gap_share_corr"] == pytest.approx(1.0 if sign == "signed" else 0.0, abs=1e-9)


def test_summarised_gaps_cover_every_occupation_of_any_seed() -> None:
    """Seed 0's occupations decided the list: one missing there dropped out of the averaged gaps."""
    from steerfair.evaluation.bios_protocol import summarise

    def rec(gaps: dict[str, float]) -> dict:
        return {"none": {"test_gold": {"accuracy": 0.8, "rms_tpr_gap": 0.1, "tpr_gaps": gaps}}}

    out = summarise([rec({"a": 0.1}), rec({"a": 0.3, "b": 0.2}), rec({"a": 0.2, "b": 0.4})], ["none"], "test_gold")
    assert out["none"]["tpr_gaps"] == pytest.approx({"a": 0.2, "b": 0.3})
