"""End to end on a tiny model: streamed statistics -> bundle -> hooks; the steered activations have the
ideal group moments exactly (up to float32), and the bundle survives a save/load round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402

from steerfair.llm import SteeringBundle, collect, fit_bundle, steer  # noqa: E402
from steerfair.steering import mixture_moments  # noqa: E402

WORDS = [f"w{i}" for i in range(30)]
VOCAB = ["[PAD]", "[UNK]", "[EOS]", *WORDS]
D = 16


def tokenizer() -> transformers.PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", eos_token="[EOS]", pad_token="[PAD]"
    )


def corpus(seed: int, n: int = 160) -> tuple[list[str], list[str], list[int]]:
    """Texts whose words depend on the group and the label, so the cells differ."""
    rng = np.random.default_rng(seed)
    texts, groups, labels = [], [], []
    for j in range(n):
        g, y = j % 2, (j // 2) % 2
        lo = 10 * g + 5 * y
        words = [WORDS[int(v)] for v in rng.integers(lo, lo + 12, size=rng.integers(5, 9)) % len(WORDS)]
        texts.append(" ".join(words))
        groups.append("ab"[g])
        labels.append(y)
    return texts, groups, labels


@pytest.mark.parametrize("intervention", ["all", "affirmative"])
def test_steered_activations_have_the_ideal_group_moments(intervention: str, tmp_path) -> None:
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_embd=D, n_head=2, vocab_size=len(VOCAB))
    model = transformers.GPT2Model(cfg).eval()
    tok = tokenizer()
    texts, groups, labels = corpus(0)
    stats = collect(model, tok, texts, groups, labels, layers=[0], pooling="all", progress=False)
    bundle = fit_bundle(stats, intervention=intervention, reg=None)
    ideal = stats.to_model(0, reg=None)
    from steerfair import solve_nearest_ideal

    target = solve_nearest_ideal(ideal, intervention=intervention).ideal
    # steer each group's texts with its own map, and collect again behind the hook
    steered = None
    for g in ("a", "b"):
        idx = [i for i, gg in enumerate(groups) if gg == g]
        with steer(model, bundle, groups=None, probe=None) as h:
            h.set_groups(groups=[g])
            part = collect(
                model,
                tok,
                [texts[i] for i in idx],
                [g] * len(idx),
                [labels[i] for i in idx],
                layers=[0],
                pooling="all",
                progress=False,
                batch_size=1,
                stats=type(stats)(stats.layers, stats.groups, stats.labels, stats.dim),
            )
        steered = part if steered is None else steered + part
    for a in range(2):
        n = steered.counts[0, a].sum()
        mu = (steered.sums[0, a].sum(0) / n).numpy()
        cov = (steered.outer[0, a].sum(0) / n).numpy() - np.outer(mu, mu)
        want = mixture_moments(target.components[a], target.class_priors[a])
        scale = np.abs(want.cov).max()
        np.testing.assert_allclose(mu, want.mean, atol=2e-4 * np.sqrt(scale))
        np.testing.assert_allclose(cov, want.cov, atol=2e-4 * scale)
    # persistence keeps the maps and probes bit for bit
    bundle.save(tmp_path / "bundle.safetensors")
    back = SteeringBundle.load(tmp_path / "bundle.safetensors")
    assert back.metadata["intervention"] == intervention
    for g in ("a", "b"):
        assert back.maps[0][g] == bundle.maps[0][g]
    np.testing.assert_array_equal(back.probes[0].W, bundle.probes[0].W)


def test_a_reloaded_low_rank_bundle_steers_bit_identically(tmp_path) -> None:
    """The SVD's factors are Fortran-ordered and the reloaded ones C-ordered: the hooks' products rounded differently
    (logits 9e-8 apart) until the parameters were laid out one way."""
    model, tok = _tiny_gpt2(), tokenizer()
    texts, groups, labels = corpus(4, 60)
    stats = collect(model, tok, texts, groups, labels, layers=[1], pooling="tokens", progress=False)
    bundle = fit_bundle(stats, shrinkage="oas").to_low_rank(4)
    bundle.save(tmp_path / "low.safetensors")
    back = SteeringBundle.load(tmp_path / "low.safetensors")
    batch = tok(texts[:4], return_tensors="pt", padding=True)
    with torch.no_grad():
        plain = model(**batch).last_hidden_state
        with steer(model, bundle, groups=groups[:4]):
            first = model(**batch).last_hidden_state
        with steer(model, back, groups=groups[:4]):
            again = model(**batch).last_hidden_state
    assert torch.equal(first, again) and not torch.equal(first, plain)  # identical, and steering acted


def test_fit_bundle_rejects_unknown_layers() -> None:
    torch.manual_seed(0)
    model = transformers.GPT2Model(transformers.GPT2Config(n_layer=2, n_embd=D, n_head=2, vocab_size=len(VOCAB)))
    texts, groups, labels = corpus(1, 40)
    stats = collect(model.eval(), tokenizer(), texts, groups, labels, layers=[1], progress=False)
    with pytest.raises(ValueError, match="no statistics"):
        fit_bundle(stats, layers=[0])


@pytest.mark.parametrize("family", ["isotropic", "affine"])
def test_subspace_bundle_steers_inside_and_leaves_the_complement(family: str) -> None:
    from steerfair import solve_nearest_ideal
    from steerfair.llm import ActivationStats
    from steerfair.llm.bundle import layer_model

    rng = np.random.default_rng(0)
    d, r = 10, 3
    stats = ActivationStats([4], ["a", "b"], [0, 1], d)
    rows = {}
    for g in ("a", "b"):
        for y in (0, 1):
            L = rng.normal(size=(d, d)) / np.sqrt(d)
            X = rng.normal(size=(400, d)) @ L.T + rng.normal(size=d) * (1 + 2 * y)
            stats.update(4, torch.from_numpy(X), [g] * 400, [y] * 400)
            rows.setdefault(g, []).append(X)
    bundle = fit_bundle(stats, rank=r, reg=None, probe=False, family=family)  # type: ignore[arg-type]
    model, coords = layer_model(stats, 4, rank=r, reg=None)
    P = coords.basis
    solution = solve_nearest_ideal(model, family=family)  # type: ignore[arg-type]
    target = solution.ideal
    assert bundle.metadata["family"] == family and bundle.metadata["kl"]["4"] == solution.kl
    comp = np.eye(d) - P @ P.T
    for a, g in enumerate(("a", "b")):
        T = bundle.maps[4][g]
        assert T.is_low_rank and T.rank == r
        X = np.concatenate(rows[g])
        Z = T(X)
        np.testing.assert_allclose(Z @ comp, X @ comp, atol=1e-10)  # the complement does not move
        want = mixture_moments(target.components[a], target.class_priors[a])
        W = Z @ P
        np.testing.assert_allclose(W.mean(0), want.mean, atol=1e-8)
        np.testing.assert_allclose(np.cov(W.T, bias=True), want.cov, atol=1e-8)
    with pytest.raises(ValueError, match="rank"):
        fit_bundle(stats, rank=0)
    with pytest.raises(ValueError, match="unknown family 'full'"):
        fit_bundle(stats, rank=r, family="full")  # type: ignore[arg-type]


def _tiny_gpt2() -> transformers.GPT2Model:
    torch.manual_seed(0)
    return transformers.GPT2Model(transformers.GPT2Config(n_layer=2, n_embd=D, n_head=2, vocab_size=len(VOCAB))).eval()


def test_pooling_is_recorded_merged_saved_and_carried_into_the_bundle(tmp_path) -> None:
    """What a row is travels with the statistics; statistics of different poolings never mix."""
    from steerfair.llm import ActivationStats

    model, tok = _tiny_gpt2(), tokenizer()
    texts, groups, labels = corpus(2, 40)
    tokens = collect(model, tok, texts, groups, labels, layers=[1], pooling="all", progress=False)
    means = collect(model, tok, texts, groups, labels, layers=[1], pooling="mean", progress=False)
    assert (tokens.pooling, means.pooling) == ("all", "mean")
    assert int(tokens.counts[0].sum()) > int(means.counts[0].sum()) == len(texts)  # a row per token vs per text
    with pytest.raises(ValueError, match="different poolings: 'all' vs 'mean'"):
        tokens.merge(means)
    declared = ActivationStats(tokens.layers, tokens.groups, tokens.labels, tokens.dim)  # pooling unknown: merges
    assert declared.merge(means).pooling == "mean" and (means + means).pooling == "mean"
    with pytest.raises(ValueError, match="pooling 'all'; collecting pooling='mean'"):
        collect(model, tok, texts, groups, labels, layers=[1], pooling="mean", stats=tokens, progress=False)
    means.save(tmp_path / "stats.safetensors")
    assert ActivationStats.load(tmp_path / "stats.safetensors").pooling == "mean"
    assert fit_bundle(tokens, reg=1e-3).metadata["pooling"] == "all"
    assert fit_bundle(means, reg=1e-3, target="shared", random_state=0).metadata["pooling"] == "mean"


def test_one_token_texts_under_tokens_pooling_add_nothing_and_break_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ``pooling="tokens"`` a one-token text gives no row: a batch of them (here the last) is skipped and the
    statistics equal those of the other texts alone (a 0-row chunk arriving at an empty buffer used to make every
    later read fail); with only such texts ``collect`` says so at once."""
    monkeypatch.setattr("steerfair.llm.stats._BUFFER_ROWS", 1)  # every batch is merged at once: the buffer is empty
    model, tok = _tiny_gpt2(), tokenizer()
    texts, groups, labels = corpus(3, 24)
    kw = {"layers": [1], "pooling": "tokens", "batch_size": 8, "progress": False}
    alone = collect(model, tok, texts, groups, labels, **kw)
    padded = collect(model, tok, [*texts, "w1", "w2"], [*groups, "a", "b"], [*labels, 0, 1], **kw)
    assert torch.equal(padded.counts, alone.counts)
    torch.testing.assert_close(padded.cov(1, "a", 0), alone.cov(1, "a", 0), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="no rows were collected"):
        collect(model, tok, ["w1", "w2", "w3", "w4"], list("abab"), [0, 0, 1, 1], **kw)


def test_metadata_is_saved_as_json_or_refused(tmp_path) -> None:
    """numpy scalars and arrays in the metadata are saved as JSON numbers and lists; anything else is refused and
    nothing is written (it was written as its ``str``)."""
    from steerfair import AffineMap

    maps = {1: {"a": AffineMap.identity(4), "b": AffineMap.identity(4)}}
    path = tmp_path / "b.safetensors"
    SteeringBundle(maps, ("a", "b"), metadata={"n": np.int64(40), "kl": np.float32(0.5), "v": np.arange(2)}).save(path)
    assert SteeringBundle.load(path).metadata == {"n": 40, "kl": 0.5, "v": [0, 1]}
    other = tmp_path / "c.safetensors"
    with pytest.raises(ValueError, match="use str keys and JSON values"):
        SteeringBundle(maps, ("a", "b"), metadata={"obj": object()}).save(other)
    assert not other.exists() and not (tmp_path / "c.safetensors.json").exists()


@pytest.mark.parametrize(
    ("pooling", "positions", "warns"),
    [
        ("mean", "all", True),
        ("mean", "generated", True),
        ("mean", "last", True),
        ("first", "all", True),
        ("last", "all", True),
        ("last", "last", False),
        ("last", "generated", False),
        ("all", "all", False),
        ("all", "prompt", False),
        ("all", "last", False),
        ("tokens", None, False),  # the default follows the bundle: positions="tokens"
        ("tokens", "generated", False),
        ("tokens", "all", True),  # would move the first state too (the attention sink)
        ("tokens", "prompt", True),
        ("mean", None, True),  # the default is "all" for a bundle of pooled states
        (None, "all", False),  # not recorded (a bundle built by hand or saved before): no guess
    ],
)
def test_attach_warns_when_maps_of_pooled_states_move_token_states(
    pooling: str | None, positions: str | None, warns: bool
) -> None:
    import warnings

    from steerfair.llm import attach

    model, tok = _tiny_gpt2(), tokenizer()
    texts, groups, labels = corpus(3, 40)
    stats = collect(model, tok, texts, groups, labels, layers=[1], pooling=pooling or "all", progress=False)
    stats.pooling = pooling
    bundle = fit_bundle(stats, reg=1e-3, probe=False)
    assert bundle.metadata.get("pooling") == pooling
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        handle = attach(model, bundle, groups=["a"], positions=positions)
    handle.remove()
    assert handle.positions == (positions or ("tokens" if pooling == "tokens" else "all"))
    mismatch = [w for w in caught if "pooling=" in str(w.message)]
    assert bool(mismatch) is warns
    if warns:
        message = str(mismatch[0].message)
        assert f"pooling={pooling!r}" in message and f"positions={handle.positions!r}" in message


def test_fit_bundle_and_probe_arguments() -> None:
    """``layers=[]`` gave an empty bundle, ``layers=1`` a TypeError, ``rank=np.int64(2)`` was refused, a bad
    criterion passed silently with the shared target; ``to_low_rank`` recorded a rank the maps did not have; a probe
    given rows of the wrong width failed inside numpy, and ``reg=-1`` inside scipy."""
    from steerfair.llm import LinearProbe

    model, tok = _tiny_gpt2(), tokenizer()
    texts, groups, labels = corpus(5, 60)
    stats = collect(model, tok, texts, groups, labels, layers=[1], pooling="tokens", progress=False)
    with pytest.raises(ValueError, match="layers is empty"):
        fit_bundle(stats, layers=[])
    assert list(fit_bundle(stats, layers=1, shrinkage="oas").maps) == [1]
    assert fit_bundle(stats, rank=np.int64(2), shrinkage="oas").metadata["rank"] == 2
    with pytest.raises(ValueError, match="unknown criterion"):
        fit_bundle(stats, target="shared", criterion="no-such-criterion", random_state=0)
    low = fit_bundle(stats, rank=3, shrinkage="oas").to_low_rank(1)
    assert low.metadata["low_rank"] == 1 and all(T.rank == 1 for T in low.maps[1].values())
    probe = LinearProbe(np.zeros((D, 2)), np.zeros(2), ("a", "b"))
    with pytest.raises(ValueError, match=f"h must have {D} columns"):
        probe.proba(np.zeros((3, D + 1)))
    with pytest.raises(ValueError, match="reg must be >= 0"):
        LinearProbe.from_moments(("a", "b"), [3, 4], np.zeros((2, 2)), np.stack([np.eye(2)] * 2), reg=-1)


def test_hand_built_bundles_keep_each_groups_map_and_probe_column_through_save_and_load(tmp_path) -> None:
    """Maps, noise and probe columns given in another order than ``groups`` are stored by label: after a round
    trip every group still has its own map and probe column; maps for other groups, and metadata that JSON would
    change (int keys, tuples), are refused."""
    from steerfair import AffineMap
    from steerfair.llm import LinearProbe

    rng = np.random.default_rng(0)
    Ta, Tb = (AffineMap(np.eye(4) + 0.1 * rng.normal(size=(4, 4)), rng.normal(size=4)) for _ in range(2))
    W = rng.normal(size=(4, 2))
    probe = LinearProbe(W, np.array([0.5, -0.5]), ("b", "a"))  # columns in the other order
    noise = {np.int64(1): {"b": rng.normal(size=(4, 1)), "a": np.zeros((4, 0))}}
    bundle = SteeringBundle({np.int64(1): {"b": Tb, "a": Ta}}, ("a", "b"), {np.int64(1): probe}, noise=noise)
    assert bundle.layers == [1] and type(bundle.layers[0]) is int
    h = rng.normal(size=(3, 4))
    path = tmp_path / "order.safetensors"
    bundle.save(path)
    back = SteeringBundle.load(path)
    for g, T in (("a", Ta), ("b", Tb)):
        np.testing.assert_array_equal(back.maps[1][g].A, T.A)
        np.testing.assert_array_equal(back.maps[1][g].b, T.b)
    np.testing.assert_array_equal(back.noise[1]["b"], noise[np.int64(1)]["b"])
    assert back.noise[1]["a"].shape == (4, 0)
    p_before, p_after = probe.proba(h), back.probes[1].proba(h)
    col_after, col_before = back.probes[1].columns_for(["a", "b"])[0], probe.columns_for(["a", "b"])[0]
    assert col_before == 1
    np.testing.assert_allclose(p_after[:, col_after], p_before[:, col_before], rtol=1e-12)
    with pytest.raises(
        ValueError, match=r"given for groups \['female', 'male'\], the bundle's groups are \['f', 'm'\]"
    ):
        SteeringBundle({1: {"female": Ta, "male": Tb}}, ("f", "m"))
    for meta, match in (({"kl": {0: 0.5}}, "key 0"), ({"span": (1, 2)}, "tuple"), ({"x": float("nan")}, "strict JSON")):
        with pytest.raises(ValueError, match=match):
            SteeringBundle({1: {"a": Ta, "b": Tb}}, ("a", "b"), metadata=meta).save(tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.update(version=1, groups=list(reversed(s["groups"]))), "groups are not those"),
        (lambda s: s.update(layers=s["layers"][:1]), "does not account for tensors"),
        (lambda s: s.update(probe_layers=[]), "does not account for tensors"),
    ],
    ids=["version-1-swapped-groups", "layers-cut", "probes-cut"],
)
def test_an_edited_sidecar_is_refused(tmp_path, edit, message) -> None:  # type: ignore[no-untyped-def]
    """A sidecar edited to claim version 1 skipped every integrity check (swapped groups loaded with each other's
    maps), and one whose layer lists were cut dropped those tensors silently; both are refused, naming the file."""
    import json

    from steerfair import AffineMap
    from steerfair.llm import LinearProbe

    rng = np.random.default_rng(0)
    maps = {
        layer: {g: AffineMap(np.eye(4) + 0.1 * rng.normal(size=(4, 4)), rng.normal(size=4)) for g in ("a", "b")}
        for layer in (0, 1)
    }
    probes = {layer: LinearProbe(rng.normal(size=(4, 2)), np.zeros(2), ("a", "b")) for layer in (0, 1)}
    path = tmp_path / "b.safetensors"
    SteeringBundle(maps, ("a", "b"), probes).save(path)
    SteeringBundle.load(path)  # as saved: loads
    side_path = tmp_path / "b.safetensors.json"
    side = json.loads(side_path.read_text())
    edit(side)
    side_path.write_text(json.dumps(side))
    with pytest.raises(ValueError, match=message):
        SteeringBundle.load(path)
