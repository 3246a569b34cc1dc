"""``fit_bundle(..., target="shared")``: per-group garblings of hidden states onto one common law per class.

Properties: the hook's steered states have the common target's class means and pooled within-class covariance in
every group (within sampling error of the garbling noise), the least separable group is left bit for bit, a subspace
bundle moves nothing outside its subspace, a save/load round trip keeps the maps, the noise factors and the target
metadata (and the outputs under a fixed seed), removing the hook restores the model bit for bit, older bundles
still load, and a bad ``target`` raises naming it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402

from steerfair.llm import ActivationStats, SteeringBundle, attach, collect, fit_bundle, steer  # noqa: E402
from steerfair.llm.bundle import layer_model  # noqa: E402
from steerfair.shared_target import SharedTargetSteering  # noqa: E402

D = 8  # hidden size of the synthetic states and of the tiny models they are steered in
WORDS = [f"w{i}" for i in range(30)]
VOCAB = ["[PAD]", "[UNK]", "[EOS]", *WORDS]


def tiny(kind: str, d: int = D, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    if kind == "gpt2":
        cfg = transformers.GPT2Config(n_layer=2, n_embd=d, n_head=2, vocab_size=len(VOCAB), n_positions=64)
        return transformers.GPT2LMHeadModel(cfg).eval()
    cfg = transformers.LlamaConfig(
        hidden_size=d,
        intermediate_size=2 * d,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=len(VOCAB),
        max_position_embeddings=64,
    )
    return transformers.LlamaForCausalLM(cfg).eval()


def tokenizer() -> transformers.PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", eos_token="[EOS]", pad_token="[PAD]"
    )


def corpus(seed: int, n: int = 120) -> tuple[list[str], list[str], list[int]]:
    """Texts whose words depend on the group and the label (group b's classes overlap more)."""
    rng = np.random.default_rng(seed)
    texts, groups, labels = [], [], []
    for j in range(n):
        g, y = j % 2, (j // 2) % 2
        lo = 10 * g + (8 if g == 0 else 2) * y
        words = [WORDS[int(v)] for v in rng.integers(lo, lo + 10, size=rng.integers(5, 9)) % len(WORDS)]
        texts.append(" ".join(words))
        groups.append("ab"[g])
        labels.append(y)
    return texts, groups, labels


def synthetic(n: int, seed: int = 0, layer: int = 0) -> tuple[ActivationStats, dict[str, list[np.ndarray]]]:
    """Hidden states of two groups with different class separability (Mahalanobis 4 vs about 1.3) and different
    within-class covariances, homoscedastic within each group; class priors differ between the groups."""
    rng = np.random.default_rng(seed)
    stats = ActivationStats([layer], ["a", "b"], [0, 1], D)
    rows: dict[str, list[np.ndarray]] = {}
    for g, sep, counts in (("a", 4.0, (n, n // 2)), ("b", 1.3, (n // 2, n))):
        L = np.eye(D) + 0.3 * rng.normal(size=(D, D))
        direction = rng.normal(size=D)
        direction = L @ (direction / np.linalg.norm(direction))  # separation `sep` in the group's own metric
        base = rng.normal(size=D) * 2.0
        for y in (0, 1):
            X = rng.normal(size=(counts[y], D)) @ L.T + base + y * sep * direction
            stats.update(layer, torch.from_numpy(X), [g] * counts[y], [y] * counts[y])
            rows.setdefault(g, []).append(X)
    return stats, rows


def steered_rows(model: torch.nn.Module, bundle: SteeringBundle, group: str, X: np.ndarray, **kw) -> np.ndarray:
    """The block-0 hook's output for the rows ``X`` of one group (one sequence of ``len(X)`` positions, float32 as
    the model's own hidden states)."""
    with steer(model, bundle, groups=[group], **kw) as handle:
        out = handle.steered(bundle.layers[0], torch.from_numpy(X).float()[None])
    return out[0].double().numpy()


def logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    # input ids and mask only: transformers 4.x Llama's forward takes no token_type_ids
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def n_hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_steered_states_have_the_common_target_in_every_group() -> None:
    n = 40_000
    stats, rows = synthetic(n)
    bundle = fit_bundle(stats, target="shared", reg=None, probe=False, random_state=0)
    model_, coords = layer_model(stats, 0, reg=None)
    target = SharedTargetSteering.fit(model_, coords).target  # the one shared-target solver
    info = bundle.metadata["shared"]["0"]
    assert bundle.target == "shared" and info["reference"] == 1 and info["greatest"]  # b is the least separable
    assert info["noise_rank"] == [1, 0] and [F.shape[1] for F in bundle.noise[0].values()] == [1, 0]
    model = tiny("gpt2")
    C = target.cov
    scale = float(np.max(np.abs(C)))
    raw_gap = steered_gap = 0.0
    means: dict[str, np.ndarray] = {}
    for g in ("a", "b"):
        X = np.concatenate(rows[g])
        Z = steered_rows(model, bundle, g, X)
        if g == "b":  # the reference group's map is the identity and it has no noise: bit for bit
            np.testing.assert_array_equal(Z, X.astype(np.float32))
        parts = np.split(Z, [len(rows[g][0])])
        q = np.array([len(p) for p in parts]) / len(Z)
        means[g] = np.array([p.mean(0) for p in parts])
        pooled = sum(qi * np.cov(p.T, bias=True) for qi, p in zip(q, parts, strict=True))
        se_mean = 6.0 * np.sqrt(np.diag(C) / min(len(p) for p in parts))
        for y in (0, 1):
            np.testing.assert_array_less(np.abs(means[g][y] - target.means[y]), se_mean)
        np.testing.assert_allclose(pooled, C, atol=6.0 * np.sqrt(2.0 / len(Z)) * scale)
        raw = sum(qi * np.cov(p.T, bias=True) for qi, p in zip(q, rows[g], strict=True))
        raw_gap = max(raw_gap, float(np.max(np.abs(raw - C))))
        steered_gap = max(steered_gap, float(np.max(np.abs(pooled - C))))
    # the check has power: before steering group a is far from the target, after it is within sampling error
    raw_a = np.array([p.mean(0) for p in rows["a"]])
    assert np.max(np.abs(raw_a - target.means)) > 10 * np.max(np.abs(means["a"] - target.means))
    assert raw_gap > 10 * steered_gap
    # class separability is levelled: the steered difference of class means is the same in both groups
    np.testing.assert_allclose(means["a"][1] - means["a"][0], means["b"][1] - means["b"][0], atol=0.05)


def test_noise_flag_seed_and_strength() -> None:
    stats, rows = synthetic(2_000, seed=1)
    bundle = fit_bundle(stats, target="shared", reg=None, probe=False, random_state=3)
    model = tiny("gpt2")
    X = rows["a"][0][:50]
    one = steered_rows(model, bundle, "a", X)
    assert np.array_equal(one, steered_rows(model, bundle, "a", X))  # the bundle's seed: the same draws
    assert not np.array_equal(one, steered_rows(model, bundle, "a", X, random_state=4))
    mean = steered_rows(model, bundle, "a", X, noise=False)  # the deterministic part only
    np.testing.assert_allclose(mean, bundle.maps[0]["a"](X), rtol=1e-5, atol=1e-5)
    F = bundle.noise[0]["a"]
    resid = np.linalg.lstsq(F, (one - mean).T, rcond=None)[0]  # the noise lies in the span of the factor
    np.testing.assert_allclose(F @ resid, (one - mean).T, atol=1e-4)
    half = steered_rows(model, bundle, "a", X, strength=0.5)  # h + s (K(h) - h): noise scaled with the map
    np.testing.assert_allclose(half, X + 0.5 * (one - X), rtol=1e-4, atol=1e-4)
    handle = attach(model, bundle, groups=["a"], random_state=9)
    try:
        first = handle.steered(0, torch.from_numpy(X).float()[None])
        handle.reseed(9)
        assert torch.equal(handle.steered(0, torch.from_numpy(X).float()[None]), first)
    finally:
        handle.remove()


def test_subspace_bundle_garbles_only_inside_the_subspace() -> None:
    stats, rows = synthetic(3_000, seed=2)
    r = 3
    bundle = fit_bundle(stats, target="shared", reg=None, probe=False, rank=r, random_state=0)
    _, coords = layer_model(stats, 0, rank=r, reg=None)
    P = coords.basis
    comp = np.eye(D) - P @ P.T
    model = tiny("gpt2")
    for g in ("a", "b"):
        T, F = bundle.maps[0][g], bundle.noise[0][g]
        assert T.is_low_rank and T.rank <= r
        np.testing.assert_allclose(comp @ F, 0.0, atol=1e-12)
        X = np.concatenate(rows[g])
        Z = steered_rows(model, bundle, g, X)
        np.testing.assert_allclose(Z @ comp, X @ comp, atol=1e-4)  # the complement does not move
    assert not np.allclose(steered_rows(model, bundle, "a", rows["a"][0]), rows["a"][0], atol=1e-2)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_round_trip_seeded_outputs_and_bit_identical_removal(kind: str, tmp_path) -> None:
    model = tiny(kind, d=16)
    tok = tokenizer()
    texts, groups, labels = corpus(0)
    stats = collect(model, tok, texts, groups, labels, layers=[1], pooling="all", progress=False)
    bundle = fit_bundle(stats, target="shared", random_state=7, metadata={"model": kind})
    assert sum(bundle.metadata["shared"]["1"]["noise_rank"]) >= 1  # one group is garbled with noise
    bundle.save(tmp_path / "shared.safetensors")
    side = json.loads((tmp_path / "shared.safetensors.json").read_text())
    assert side["version"] == 3 and side["noise_layers"] == [1]
    back = SteeringBundle.load(tmp_path / "shared.safetensors")
    assert back.metadata == json.loads(json.dumps(bundle.metadata))
    assert back.target == "shared" and back.metadata["random_state"] == 7 and back.metadata["model"] == kind
    for g in ("a", "b"):
        assert back.maps[1][g] == bundle.maps[1][g]  # the deterministic parts, bit for bit
        np.testing.assert_array_equal(back.noise[1][g], bundle.noise[1][g])
        assert back.noise[1][g].shape == bundle.noise[1][g].shape  # also a deterministic group's (d, 0)
    np.testing.assert_array_equal(back.probes[1].W, bundle.probes[1].W)
    batch = tok(texts[:2], return_tensors="pt", padding=True)
    ref = logits(model, batch)
    with steer(model, bundle, groups=groups[:2]):
        one = logits(model, batch)
    with steer(model, back, groups=groups[:2]):
        two = logits(model, batch)
    assert torch.equal(one, two)  # the same seed: the same outputs after the round trip
    assert not torch.equal(one, ref)  # steering changed the hidden states
    with steer(model, back, groups=groups[:2], random_state=8):
        assert not torch.equal(logits(model, batch), one)  # another seed: other noise
    handle = attach(model, back, probe=back.probes)  # the group from the probe, per token
    assert not torch.equal(logits(model, batch), ref)
    handle.remove()
    assert torch.equal(logits(model, batch), ref) and n_hooks(model) == 0  # removal restores the model exactly


def test_ideal_bundles_are_unchanged_and_older_bundles_still_load(tmp_path) -> None:
    stats, _ = synthetic(1_000, seed=3)
    ideal = fit_bundle(stats, reg=None)
    assert ideal.target == "ideal" and ideal.noise == {} and "kl" in ideal.metadata
    ideal.save(tmp_path / "ideal.safetensors")
    side = json.loads((tmp_path / "ideal.safetensors.json").read_text())
    assert side["version"] == 2 and "noise_layers" not in side  # what older releases write and read
    del side["metadata"]["target"]  # a bundle saved before target= existed
    (tmp_path / "ideal.safetensors.json").write_text(json.dumps(side))
    back = SteeringBundle.load(tmp_path / "ideal.safetensors")
    assert back.target == "ideal" and back.noise == {}
    for g in ("a", "b"):
        assert back.maps[0][g] == ideal.maps[0][g]
    # the default is today's behaviour: the same maps as an explicit target="ideal"
    explicit = fit_bundle(stats, reg=None, target="ideal")
    assert all(explicit.maps[0][g] == ideal.maps[0][g] for g in ("a", "b"))


def test_bad_arguments_raise_naming_them() -> None:
    stats, _ = synthetic(200, seed=4)
    with pytest.raises(ValueError, match="target"):
        fit_bundle(stats, target="nearest")
    with pytest.raises(ValueError, match="target"):
        fit_bundle(stats, target=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="random_state"):
        fit_bundle(stats, target="shared", random_state=-1)
    bundle = fit_bundle(stats, target="shared", reg=None, probe=False)
    with pytest.raises(ValueError, match="noise"):
        attach(tiny("gpt2"), bundle, groups=["a"], noise="yes")
    with pytest.raises(ValueError, match="noise"):
        SteeringBundle(bundle.maps, bundle.groups, noise={0: {"a": np.zeros((D + 1, 1)), "b": np.zeros((D, 0))}})
