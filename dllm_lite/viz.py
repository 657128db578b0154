r"""Pictures for the notebooks: schedules, masked token grids, attention maps, curves, denoising.

Every function draws on a matplotlib Axes (a new figure when `ax` is None) and returns
what it drew on, so a notebook can add to it or place it in a larger figure. Every axis
is labelled and every coloured thing has a legend entry or a colour bar.

- `plot_schedules`: $\alpha(t)$, the chance a token is still clean at time t, and the ELBO
  weight $w(t) = -\alpha'(t) / (1 - \alpha(t))$.
- `show_tokens`: rows of token ids as a grid, masked cells shaded (e.g. $x_t$ as t grows).
- `plot_attention`: one head's (T, T) attention map.
- `plot_curves`: labelled loss curves, with reference lines such as an entropy.
- `plot_trajectory` and `denoising_viewer`: which tokens the reverse process reveals at
  each step, as a static figure and as an ipywidgets slider.

References: Sahoo et al. 2024 (MDLM) for the schedules and weights; the matplotlib and
ipywidgets documentation.
"""

import html

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from .corrupt import get_schedule

__all__ = ["plot_schedules", "show_tokens", "plot_attention", "plot_curves", "plot_trajectory",
           "denoising_viewer", "reveal_steps"]

# cell kinds in a token grid, and their colours
CLEAN, MASKED, REVEALED = 0, 1, 2
COLOURS = {CLEAN: "#f4f4f4", MASKED: "#6e6e6e", REVEALED: "#ffb347"}
_VISIBLE_WHITESPACE = str.maketrans({" ": "\u2423", "\n": "\u21b5", "\t": "\u21e5"})


def _as_int_rows(rows, what: str = "rows") -> np.ndarray:
    """Token ids as a 2-D integer array (R, T); a single 1-D sequence becomes one row."""
    array = rows.detach().cpu().numpy() if isinstance(rows, torch.Tensor) else np.asarray(rows)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.size == 0 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{what} must be token ids of shape (R, T) or (T,), got shape {array.shape} "
                         f"and dtype {array.dtype}; pass a LongTensor or a list of lists of ints")
    return array


def _token_text(token: int, decode) -> str:
    """What a grid cell shows for a real token: decode([token]) with whitespace made visible, or the id."""
    return decode([int(token)]).translate(_VISIBLE_WHITESPACE) if decode is not None else str(int(token))


def _new_axes(ax, n_rows: int, n_cols: int):
    """The given Axes, or a new one sized so that cells stay readable (about 0.35 inch each)."""
    if ax is not None:
        return ax
    cell = min(0.35, 13.0 / n_cols)
    _, ax = plt.subplots(figsize=(max(4.0, cell * n_cols + 1.6), max(1.4, cell * n_rows + 1.0)))
    return ax


def _draw_grid(ax, ids, kinds, decode, mask_text, cell_text=None, text_colour=None):
    """Draw ids (R, T) coloured by kinds (R, T) (CLEAN / MASKED / REVEALED) with one text per cell.

    cell_text / text_colour: optional (R, T) overrides, None where the default applies.
    """
    n_rows, n_cols = ids.shape
    ax.imshow(kinds, cmap=ListedColormap([COLOURS[CLEAN], COLOURS[MASKED], COLOURS[REVEALED]]),
              vmin=0, vmax=2, aspect="auto", interpolation="nearest")
    width_in = ax.figure.get_size_inches()[0] * ax.get_position().width
    fontsize = float(np.clip(0.5 * 72 * width_in / n_cols, 4, 10))
    for r in range(n_rows):
        for c in range(n_cols):
            if cell_text is not None and cell_text[r][c] is not None:
                text = cell_text[r][c]
            else:
                text = mask_text if kinds[r, c] == MASKED else _token_text(ids[r, c], decode)
            colour = "white" if kinds[r, c] == MASKED else "black"
            if text_colour is not None and text_colour[r][c] is not None:
                colour = text_colour[r][c]
            size = fontsize if len(text) < 3 else fontsize * 0.8
            ax.text(c, r, text, ha="center", va="center", fontsize=size, color=colour)
    if n_cols <= 40:
        ax.set_xticks(range(n_cols))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=20, integer=True))
    ax.set_xlabel("position in the sequence")
    ax.grid(False)


def show_tokens(rows, mask_id: int, decode=None, labels=None, ax=None, title=None, scores=None,
                score_label: str = "score", mask_text: str = "M", generated=None):
    r"""A grid of token rows, one row per sequence, with masked cells shaded.

    rows: (R, T) token ids (tensor, array or lists), e.g. $x_t$ for growing t.
    decode: optional function from a list of ids to text (`tokenizer.decode`); each cell
    shows decode([id]) with spaces and newlines made visible, else the id itself.
    labels: R row labels (e.g. "t = 0.30"). Masked cells show `mask_text`.
    scores: optional (R, T) numbers in [0, 1] (e.g. the model's probability of the true
    token); masked cells are then coloured by their score, show it to two decimals, and a
    colour bar labelled `score_label` takes the place of the legend.
    generated: optional (R, T) bools marking the cells the model wrote (e.g. an infilled gap):
    they are drawn in the "revealed" colour and get their own legend entry. Returns the Axes.
    """
    ids = _as_int_rows(rows)
    n_rows, n_cols = ids.shape
    if labels is not None and len(labels) != n_rows:
        raise ValueError(f"got {len(labels)} labels for {n_rows} rows; pass one label per row")
    ax = _new_axes(ax, n_rows, n_cols)
    is_masked = ids == mask_id
    cell_text = text_colour = None
    if scores is not None:
        score_array = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, float)
        if score_array.shape != ids.shape:
            raise ValueError(f"scores has shape {score_array.shape} but rows has {ids.shape}; pass one score per cell")
        # ".83" rather than "0.83", so that the number fits in its cell
        cell_text = [[f"{score_array[r, c]:.2f}".removeprefix("0") if is_masked[r, c] else None
                      for c in range(n_cols)] for r in range(n_rows)]
        # dark text on the light (high) end of viridis, white on the dark end
        text_colour = [[("black" if score_array[r, c] > 0.6 else "white") if is_masked[r, c] else None
                        for c in range(n_cols)] for r in range(n_rows)]
    kinds = np.where(is_masked, MASKED, CLEAN)
    if generated is not None:
        written = np.asarray(generated.cpu() if isinstance(generated, torch.Tensor) else generated, bool)
        if written.shape != ids.shape:
            raise ValueError(f"generated has shape {written.shape} but rows has {ids.shape}; pass one flag per cell")
        kinds = np.where(written & ~is_masked, REVEALED, kinds)
    _draw_grid(ax, ids, kinds, decode, mask_text, cell_text, text_colour)
    if scores is None:
        handles = [Patch(color=COLOURS[CLEAN], label="clean token"), Patch(color=COLOURS[MASKED], label=f"[MASK] ({mask_text})")]
        if generated is not None:
            handles.append(Patch(color=COLOURS[REVEALED], label="written by the model"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    else:  # the colour bar is the legend of the masked cells; clean cells show their token
        overlay = np.ma.masked_where(~is_masked, score_array)
        image = ax.imshow(overlay, cmap="viridis", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        ax.figure.colorbar(image, ax=ax, label=score_label, fraction=0.04, pad=0.02)
    ax.set_yticks(range(n_rows))
    ax.set_yticklabels(labels if labels is not None else [f"row {r}" for r in range(n_rows)])
    if title:
        ax.set_title(title)
    return ax


def plot_schedules(schedules=("linear", "cosine", "quadratic"), ax=None, t_min: float = 0.01):
    r"""Two panels: $\alpha(t)$ on [0, 1] and the weight $w(t) = -\alpha'(t)/(1-\alpha(t))$ on a log scale.

    schedules: names (or `corrupt.Schedule` objects). $w(t)$ blows up as t -> 0 ($1/t$ for
    the linear schedule), so it is drawn from `t_min`. ax: None for a new figure, or a pair
    of Axes (alpha, weight). Returns the pair of Axes.
    """
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    if len(ax) != 2:
        raise ValueError("plot_schedules draws two panels: pass ax=(ax_alpha, ax_weight) or ax=None")
    ax_alpha, ax_weight = ax
    t = torch.linspace(0, 1, 201)
    t_weight = torch.linspace(t_min, 1, 200)
    for name in schedules:
        schedule = get_schedule(name)
        ax_alpha.plot(t, schedule.alpha(t), label=schedule.name)
        ax_weight.plot(t_weight, schedule.weight(t_weight), label=schedule.name)
    ax_alpha.set(xlabel="time t", ylabel=r"$\alpha(t)$ = P(token still clean)", title="noise schedule", ylim=(-0.02, 1.02))
    ax_weight.set(xlabel="time t", ylabel=r"$w(t) = -\alpha'(t)/(1-\alpha(t))$", title="ELBO weight", yscale="log")
    ax_alpha.legend()
    ax_weight.legend()
    return ax_alpha, ax_weight


def plot_attention(weights, ax=None, title=None, labels=None, vmax=None):
    """One attention map: weights (T, T), row i = how query position i spreads over key positions j.

    labels: optional T tick labels (e.g. the tokens). Adds a colour bar. Returns the Axes.
    vmax: the weight at which the colours saturate; by default the 99th percentile of the
    positive weights, so that a few near-1 weights (a causal map's first query can only attend
    to itself) do not flatten the rest of the map. The colour bar's arrow marks the clipping.
    """
    array = np.asarray(weights.detach().float().cpu() if isinstance(weights, torch.Tensor) else weights, float)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ValueError(f"plot_attention takes one (T, T) map, got shape {array.shape}; "
                         f"select one batch row and head first, e.g. weights[0, head]")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.6, 4))
    positive = array[array > 0]
    if vmax is None:
        vmax = float(np.quantile(positive, 0.99)) if positive.size else 1.0
    image = ax.imshow(array, cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, label="attention weight", fraction=0.046, pad=0.04,
                       extend="max" if array.max() > vmax else "neither")
    ax.set(xlabel="key position j (attended to)", ylabel="query position i")
    if labels is not None:
        if len(labels) != array.shape[0]:
            raise ValueError(f"got {len(labels)} labels for a {array.shape[0]}x{array.shape[0]} map; pass one per position")
        ax.set_xticks(range(len(labels)), [str(label).translate(_VISIBLE_WHITESPACE) for label in labels], fontsize=7)
        ax.set_yticks(range(len(labels)), [str(label).translate(_VISIBLE_WHITESPACE) for label in labels], fontsize=7)
    ax.grid(False)
    if title:
        ax.set_title(title)
    return ax


def plot_curves(curves: dict, ax=None, xlabel: str = "training step", ylabel: str = "loss (nats per token)",
                hlines: "dict | None" = None, title=None, logx: bool = False):
    """Labelled curves, `curves = {label: (steps, values)}`, plus dashed lines `hlines = {label: y}`.

    Short curves (under 40 points) get markers. Returns the Axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for label, (steps, values) in curves.items():
        steps, values = np.asarray(steps, float), np.asarray(values, float)
        if steps.shape != values.shape:
            raise ValueError(f"curve {label!r}: {steps.shape[0]} steps but {values.shape[0]} values; pass equal lengths")
        ax.plot(steps, values, label=label, marker="o" if len(steps) < 40 else None, markersize=3)
    for index, (label, y) in enumerate((hlines or {}).items()):
        ax.axhline(y, linestyle="--", color=f"C{len(curves) + index}", label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if logx:
        ax.set_xscale("log")
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def reveal_steps(trajectory, mask_id: int, row: int = 0) -> np.ndarray:
    """For each position of sequence `row`, the step at which it was last unmasked (0 if never masked, -1 if still masked)."""
    states = np.stack([_as_int_rows(state, "each trajectory state")[row] for state in trajectory])  # (S+1, T)
    step_of = np.where(states[0] == mask_id, -1, 0)
    for step in range(1, len(states)):
        newly = (states[step - 1] == mask_id) & (states[step] != mask_id)
        step_of[newly] = step
        step_of[states[step] == mask_id] = -1  # a remasking sampler may hide a token again
    return step_of


def _trajectory_states(trajectory, row: int) -> np.ndarray:
    """The states of sequence `row` along the trajectory, (S+1, T)."""
    if len(trajectory) < 1:
        raise ValueError("the trajectory is empty; pass sample.generate(..., return_trajectory=True)'s list")
    states = [_as_int_rows(state, "each trajectory state") for state in trajectory]
    if not 0 <= row < states[0].shape[0]:
        raise ValueError(f"row {row} is outside the batch of {states[0].shape[0]} sequences")
    return np.stack([state[row] for state in states])


def plot_trajectory(trajectory, mask_id: int, decode=None, row: int = 0, max_rows: int = 24, ax=None, title=None):
    """The reverse process of one sequence as a grid: one row per denoising step, all-masked state on top.

    trajectory: list of (B, T) ids, the all-masked state first (as sample.generate returns
    with return_trajectory=True); `row` picks the sequence. With more than `max_rows`
    states, evenly spaced ones are shown (first and last always). Orange cells were
    revealed since the row above, grey ones are still masked. Returns the Axes.
    """
    states = _trajectory_states(trajectory, row)  # (S+1, T)
    shown = np.unique(np.linspace(0, len(states) - 1, min(max_rows, len(states))).round().astype(int))
    kinds = np.where(states[shown] == mask_id, MASKED, CLEAN)
    for index in range(1, len(shown)):
        newly = (states[shown[index - 1]] == mask_id) & (states[shown[index]] != mask_id)
        kinds[index, newly] = REVEALED
    ax = _new_axes(ax, len(shown), states.shape[1])
    _draw_grid(ax, states[shown], kinds, decode, mask_text="")
    ax.set_yticks(range(len(shown)), [f"step {step}" for step in shown])
    ax.set_ylabel("denoising step")
    handles = [Patch(color=COLOURS[MASKED], label="[MASK]"), Patch(color=COLOURS[REVEALED], label="revealed since row above"),
               Patch(color=COLOURS[CLEAN], label="revealed earlier")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.set_title(title or f"denoising, {len(states) - 1} steps")
    return ax


def _state_html(states: np.ndarray, step: int, mask_id: int, decode) -> str:
    """One state as coloured HTML spans: grey masked, orange revealed at this step, light earlier."""
    revealed_now = (states[step - 1] == mask_id) & (states[step] != mask_id) if step > 0 else np.zeros(states.shape[1], bool)
    spans = []
    for position, token in enumerate(states[step]):
        kind = MASKED if token == mask_id else REVEALED if revealed_now[position] else CLEAN
        text = "&nbsp;" if kind == MASKED else html.escape(_token_text(token, decode))
        colour = "white" if kind == MASKED else "black"
        spans.append(f'<span class="tok-{kind}" style="background:{COLOURS[kind]};color:{colour};'
                     f'font-family:monospace;padding:1px 3px;margin:1px;display:inline-block;min-width:0.8em">{text}</span>')
    masked = int((states[step] == mask_id).sum())
    caption = (f"<b>step {step} of {len(states) - 1}</b>: {masked} masked, "
               f"{int(revealed_now.sum())} revealed at this step (orange)")
    return f"<div>{caption}</div><div style='line-height:1.9'>{''.join(spans)}</div>"


def denoising_viewer(trajectory, mask_id: int, decode=None, row: int = 0, static: bool = True, max_rows: int = 24):
    """An ipywidgets slider over the denoising steps of sequence `row`, tokens revealed at each step in orange.

    With static=True it first displays `plot_trajectory` of the same trajectory, so the
    notebook still shows the process where no live kernel runs the widget (a stored or
    rendered notebook). Returns the widget (a VBox of the slider and the HTML view).
    """
    import ipywidgets as widgets
    from IPython.display import display

    states = _trajectory_states(trajectory, row)  # (S+1, T)
    if static:
        figure = plot_trajectory(trajectory, mask_id, decode, row=row, max_rows=max_rows).figure
        display(figure)
        plt.close(figure)
    slider = widgets.IntSlider(value=0, min=0, max=len(states) - 1, step=1, description="step",
                               continuous_update=True, layout=widgets.Layout(width="60%"))
    view = widgets.HTML(_state_html(states, 0, mask_id, decode))
    slider.observe(lambda change: setattr(view, "value", _state_html(states, change["new"], mask_id, decode)), names="value")
    return widgets.VBox([slider, view])
