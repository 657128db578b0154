"""Tests for dllm_lite.viz: each picture is drawn on tiny inputs (Agg backend) and has the expected parts."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dllm_lite import viz  # noqa: E402

MASK = 9


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def letters(ids):
    return "".join("abcdefgh"[i] for i in ids)


def toy_trajectory():
    """Four tokens revealed over three steps: 2 at step 1, 1 at step 2, 1 at step 3; batch of 2."""
    final = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    steps = [torch.full_like(final, MASK)]
    for revealed in ([0, 2], [0, 1, 2], [0, 1, 2, 3]):
        state = torch.full_like(final, MASK)
        state[:, revealed] = final[:, revealed]
        steps.append(state)
    return steps


def test_plot_schedules_draws_alpha_and_weight_for_each_schedule():
    ax_alpha, ax_weight = viz.plot_schedules(("linear", "cosine"))
    for ax in (ax_alpha, ax_weight):
        assert len(ax.lines) == 2
        assert [text.get_text() for text in ax.get_legend().get_texts()] == ["linear", "cosine"]
        assert ax.get_xlabel() and ax.get_ylabel()
    t, alpha = ax_alpha.lines[0].get_data()
    np.testing.assert_allclose(alpha, 1 - t, atol=1e-6)  # linear: alpha(t) = 1 - t
    t, weight = ax_weight.lines[0].get_data()
    np.testing.assert_allclose(weight, 1 / t, rtol=1e-4)  # linear: w(t) = 1/t
    assert ax_weight.get_yscale() == "log"


def test_plot_schedules_rejects_one_axes_and_unknown_names():
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="two panels"):
        viz.plot_schedules(ax=[ax])
    with pytest.raises(ValueError, match="unknown schedule"):
        viz.plot_schedules(("linear", "bogus"))


def test_show_tokens_one_text_per_cell_and_masked_cells_marked():
    rows = torch.tensor([[0, 1, 2], [0, MASK, 2]])
    ax = viz.show_tokens(rows, MASK, decode=letters, labels=["t=0", "t=0.5"], title="x_t")
    texts = [text.get_text() for text in ax.texts]
    assert texts == ["a", "b", "c", "a", "M", "c"]
    assert [label.get_text() for label in ax.get_yticklabels()] == ["t=0", "t=0.5"]
    assert ax.get_title() == "x_t" and ax.get_xlabel()
    assert len(ax.get_legend().get_texts()) == 2
    kinds = ax.images[0].get_array()
    assert kinds.tolist() == [[0, 0, 0], [0, 1, 0]]


def test_show_tokens_ids_without_decode_and_visible_whitespace():
    ax = viz.show_tokens([3, MASK, 4], MASK)
    assert [text.get_text() for text in ax.texts] == ["3", "M", "4"]
    ax = viz.show_tokens([[0, 1]], MASK, decode=lambda ids: " \n"[ids[0]])
    assert [text.get_text() for text in ax.texts] == ["\u2423", "\u21b5"]


def test_show_tokens_scores_colour_masked_cells_and_add_a_colour_bar():
    rows = torch.tensor([[0, MASK, MASK]])
    scores = torch.tensor([[0.0, 0.25, 0.9]])
    ax = viz.show_tokens(rows, MASK, decode=letters, scores=scores, score_label="p(true token)")
    assert [text.get_text() for text in ax.texts] == ["a", ".25", ".90"]
    assert len(ax.images) == 2  # the cell kinds and the score overlay
    colour_bar_axes = [other for other in ax.figure.axes if other is not ax]
    assert len(colour_bar_axes) == 1 and colour_bar_axes[0].get_ylabel() == "p(true token)"


def test_show_tokens_rejects_bad_input():
    with pytest.raises(ValueError, match="token ids"):
        viz.show_tokens(torch.zeros(2, 3), MASK)
    with pytest.raises(ValueError, match="labels"):
        viz.show_tokens([[0, 1]], MASK, labels=["a", "b"])
    with pytest.raises(ValueError, match="scores"):
        viz.show_tokens([[0, 1]], MASK, scores=[[0.5]])


def test_plot_attention_labels_and_colour_bar():
    weights = torch.softmax(torch.randn(5, 5), dim=-1)
    ax = viz.plot_attention(weights, title="layer 0", labels=list("hello"))
    assert ax.images[0].get_array().shape == (5, 5)
    assert "key" in ax.get_xlabel() and "query" in ax.get_ylabel()
    assert [label.get_text() for label in ax.get_xticklabels()] == list("hello")
    assert ax.get_title() == "layer 0" and len(ax.figure.axes) == 2
    with pytest.raises(ValueError, match=r"\(T, T\)"):
        viz.plot_attention(torch.rand(1, 2, 5, 5))


def test_plot_curves_one_line_per_curve_and_per_reference():
    curves = {"train": ([0, 1, 2], [3.0, 2.0, 1.5]), "validation": (torch.arange(3), torch.tensor([3.1, 2.2, 1.7]))}
    ax = viz.plot_curves(curves, hlines={"entropy": 1.0}, ylabel="nats per char", title="loss")
    assert len(ax.lines) == 3
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["train", "validation", "entropy"]
    assert ax.get_ylabel() == "nats per char" and ax.get_xlabel() == "training step"
    assert ax.lines[2].get_ydata()[0] == 1.0
    with pytest.raises(ValueError, match="equal lengths"):
        viz.plot_curves({"bad": ([0, 1], [1.0])})


def test_reveal_steps():
    steps = viz.reveal_steps(toy_trajectory(), MASK, row=1)
    assert steps.tolist() == [1, 2, 1, 3]
    partial = toy_trajectory()[:2]
    assert viz.reveal_steps(partial, MASK).tolist() == [1, -1, 1, -1]


def test_plot_trajectory_highlights_newly_revealed_tokens():
    ax = viz.plot_trajectory(toy_trajectory(), MASK, decode=letters, row=1)
    kinds = ax.images[0].get_array()
    assert kinds.tolist() == [[1, 1, 1, 1], [2, 1, 2, 1], [0, 2, 0, 1], [0, 0, 0, 2]]
    assert [label.get_text() for label in ax.get_yticklabels()] == ["step 0", "step 1", "step 2", "step 3"]
    assert [text.get_text() for text in ax.texts[4:8]] == ["e", "", "g", ""]  # row 1 of the batch, masked cells blank
    assert len(ax.get_legend().get_texts()) == 3


def test_plot_trajectory_subsamples_long_trajectories():
    trajectory = toy_trajectory() * 10  # 40 states
    ax = viz.plot_trajectory(trajectory, MASK, max_rows=5)
    labels = [label.get_text() for label in ax.get_yticklabels()]
    assert len(labels) == 5 and labels[0] == "step 0" and labels[-1] == "step 39"
    with pytest.raises(ValueError, match="outside the batch"):
        viz.plot_trajectory(toy_trajectory(), MASK, row=2)
    with pytest.raises(ValueError, match="empty"):
        viz.plot_trajectory([], MASK)


def test_denoising_viewer_slider_updates_the_view():
    widget = viz.denoising_viewer(toy_trajectory(), MASK, decode=letters, static=False)
    slider, view = widget.children
    assert (slider.min, slider.max, slider.value) == (0, 3, 0)
    assert view.value.count("tok-1") == 4 and "tok-2" not in view.value  # all masked at step 0
    slider.value = 1
    assert view.value.count("tok-2") == 2 and view.value.count("tok-1") == 2
    assert "step 1 of 3" in view.value
    slider.value = 3
    assert view.value.count("tok-2") == 1 and view.value.count("tok-0") == 3 and ">d<" in view.value


def test_denoising_viewer_static_figure_is_displayed(capsys):
    viz.denoising_viewer(toy_trajectory(), MASK, static=True)
    assert "Figure" in capsys.readouterr().out  # IPython's display prints the figure's repr outside a notebook
    assert plt.get_fignums() == []  # and closes it so the inline backend does not draw it twice


def test_plot_attention_is_not_flattened_by_a_causal_maps_first_row():
    T = 40
    scores = torch.randn(T, T, generator=torch.Generator().manual_seed(0))
    weights = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
    ax = viz.plot_attention(weights)
    low, high = ax.images[0].get_clim()
    assert low == 0 and high < 0.6  # query 0 attends to itself with weight 1.0; the colours saturate well below
    assert ax.images[0].colorbar.extend == "max"
    _, high = viz.plot_attention(weights, vmax=1.0).images[0].get_clim()
    assert high == 1.0


def test_show_tokens_marks_the_cells_the_model_wrote():
    rows = torch.tensor([[0, MASK, 2], [0, 1, 2]])
    written = torch.tensor([[False, True, False], [False, True, False]])  # a mask cell stays a mask cell
    ax = viz.show_tokens(rows, MASK, decode=letters, generated=written)
    assert ax.images[0].get_array().tolist() == [[0, 1, 0], [0, 2, 0]]
    assert [t.get_text() for t in ax.get_legend().get_texts()][-1] == "written by the model"
    with pytest.raises(ValueError, match="one flag per cell"):
        viz.show_tokens(rows, MASK, generated=written[:, :2])
