"""Write the exercise notebooks in `exercises/` from the text below, then run them in place.

    python instructors/build_notebooks.py            # every notebook
    python instructors/build_notebooks.py 03 05      # only these numbers

Each notebook is: what you will learn, the math, a look at the inputs, the function to
write (a stub with `# TODO` that raises NotImplementedError), a cell that calls its
checker from `dllm_lite.exercises`, and three collapsed hints to open one at a time (see
`hint`). The notebooks are stored *with* the
stub's outputs, so `pytest --nbval-lax --nbval-current-env exercises` checks that a
fresh notebook runs and that its checker answers "not implemented yet" (the checker
cells are marked NBVAL_CHECK_OUTPUT). Run this with the project's environment active:
the kernel is the `python` on PATH.
"""

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

EXERCISES_DIR = Path(__file__).resolve().parent.parent / "exercises"
AFTER = ("## When it passes\n\nCompare your function with the library's version, {where}. "
         "The checker recognises these classic mistakes: {mistakes}.")


HINT_TIERS = (("Hint 1: the idea", "no code"),
              ("Hint 2: the API", "functions and shapes"),
              ("Hint 3: the code", "the key lines"))


def hint(*, idea, api, code):
    """The hint cell: three collapsed <details> blocks, for the student to open one at a time.

    `idea` is the concept in words and math, with no code; `api` names the torch and dllm_lite
    functions and the shapes to watch, without putting the solution together; `code` is the key
    lines of Python, shown as a code block. `idea` and `api` are a string or a list of points.
    """
    def points(text):
        return text if isinstance(text, str) else "\n".join(f"- {point}" for point in text)

    bodies = (points(idea), points(api), f"```python\n{code.strip()}\n```")
    blocks = [f"<details>\n<summary><b>{title}</b> ({what})</summary>\n\n{body}\n\n</details>"
              for (title, what), body in zip(HINT_TIERS, bodies)]
    return ("**Stuck?** Three hints, from a nudge to the code. Open them one at a time, and try "
            "again after each.\n\n" + "\n\n".join(blocks))


NOTEBOOKS = {
    "01_corrupt": dict(
        title="Exercise 01: the forward process, masking tokens",
        learn=["how a masked diffusion model corrupts text: every token, independently, becomes [MASK] "
               "with probability $1 - \\alpha(t)$",
               "what the noise schedule $\\alpha(t)$ means, and why each row of a batch gets its own time $t$",
               "how to draw one random mask per token with torch, without touching the clean data"],
        math=r"""## The math

A clean sequence $x_0$ is corrupted into $x_t$, position by position:

$$ q(x_t^i \mid x_0^i) = \alpha(t)\,[x_t^i = x_0^i] + \big(1 - \alpha(t)\big)\,[x_t^i = m] $$

$\alpha(t)$ is the probability that a token is still clean at time $t \in [0, 1]$:
$\alpha(0) = 1$ (nothing masked), $\alpha(1) = 0$ (everything masked). For the linear
schedule $\alpha(t) = 1 - t$, so a row at time $t$ has about a share $t$ of its tokens masked.

To sample it, draw one uniform number $u_i \sim U(0, 1)$ per token and mask where $u_i < 1 - \alpha(t)$.""",
        setup="import torch\n\nfrom dllm_lite import exercises\nfrom dllm_lite.corrupt import get_schedule",
        look="schedule = get_schedule(\"linear\")\nt = torch.tensor([0.0, 0.25, 0.5, 1.0])\n"
             "print(\"alpha(t)     =\", schedule.alpha(t))\nprint(\"1 - alpha(t) =\", 1 - schedule.alpha(t))",
        task=r"""## Your turn

Write `corrupt(x0, t, mask_id, alpha)`:

- `x0`: (B, T) token ids; `t`: (B,) one time per row; `mask_id`: the [MASK] id;
  `alpha`: a function, tensor in, tensor out (for example `get_schedule("cosine").alpha`).
- Return `(xt, is_masked)`, both (B, T): `xt` holds `mask_id` where a token was masked and
  `x0` elsewhere; `is_masked` is a **bool** tensor, True where a token was masked.
- Leave `x0` itself unchanged: the loss needs the clean tokens as targets.""",
        stub='''def corrupt(x0, t, mask_id, alpha):
    """Mask each token of x0 (B, T) with probability 1 - alpha(t); return (xt, is_masked)."""
    # TODO: the masking probability of each row, shaped (B, 1) so that it broadcasts along T
    # TODO: one uniform random number per token; a token is masked where it is below that probability
    # TODO: xt = mask_id where masked, x0 elsewhere, without writing into x0
    raise NotImplementedError''',
        check="exercises.check_corrupt(corrupt)",
        hint=hint(
            idea=["Every token gets its own coin flip, independent of all the others: it becomes $m$ with "
                  "probability $1 - \\alpha(t_b)$, where $t_b$ is the time of *its* row.",
                  "A coin with probability $p$: draw $u \\sim U(0, 1)$ and call it heads when $u < p$.",
                  "The result is a new sequence, $m$ where the coin said so and $x_0$ elsewhere; $x_0$ itself "
                  "stays clean, because the loss needs it as the targets."],
            api=["`alpha(t)` takes a tensor and returns one of the same shape. `t` is (B,) but `x0` is (B, T): "
                 "reshape to (B, 1) with `t.reshape(-1, 1)` (or `t[:, None]`) so that it broadcasts along T.",
                 "`torch.rand(shape)` gives one uniform number per entry; comparing a (B, T) tensor with a "
                 "(B, 1) one using `<` gives a (B, T) **bool** tensor.",
                 "`torch.where(condition, a, b)` returns a new tensor, `a` where the condition holds and `b` "
                 "elsewhere; `a` may be a plain int. Assigning into `x0[...]` would change the caller's tensor."],
            code="""
p_mask = 1 - alpha(t.reshape(-1, 1))       # (B, 1): one masking probability per row
is_masked = torch.rand(x0.shape) < p_mask  # (B, T) bool: one coin per token
xt = torch.where(is_masked, mask_id, x0)   # a new tensor; x0 is left as it was
return xt, is_masked
"""),
        after=AFTER.format(where="`corrupt` in `dllm_lite/corrupt.py`",
                           mistakes="masking with probability $\\alpha(t)$ instead of $1 - \\alpha(t)$, masking "
                                    "nothing or everything, one $t$ for the whole batch, always masking the first "
                                    "tokens, and writing the masks into `x0`"),
    ),
    "02_elbo_weight": dict(
        title="Exercise 02: the weight $w(t)$ of the diffusion loss",
        learn=["where the weight $w(t) = -\\alpha'(t) / (1 - \\alpha(t))$ of the training loss comes from",
               "why it is $1/t$ for the linear schedule, and why the loss is a bound on the likelihood only with it"],
        math=r"""## The math

Cut $[0, 1]$ into small steps. Going back from $t$ to $s = t - \Delta$, a token that is
masked at time $t$ is revealed with probability

$$ \frac{\alpha(s) - \alpha(t)}{1 - \alpha(t)} \approx \frac{-\alpha'(t)\,\Delta}{1 - \alpha(t)}, $$

and every reveal costs $-\log p_\theta(x_0^i \mid x_t)$ nats in the ELBO. Adding the steps up
and letting $\Delta \to 0$ gives the continuous-time negative ELBO (MDLM, eq. 10):

$$ \mathcal{L} = \int_0^1 w(t)\; \mathbb{E}_{x_t}\Big[\sum_{i:\,x_t^i = m} -\log p_\theta(x_0^i \mid x_t)\Big]\,dt,
   \qquad w(t) = \frac{-\alpha'(t)}{1 - \alpha(t)}. $$

$\alpha$ decreases, so $\alpha'(t) \le 0$ and $w(t) \ge 0$. For $\alpha(t) = 1 - t$: $w(t) = 1/t$.
Few tokens are masked at small $t$, and each of them counts more.""",
        setup="import torch\n\nfrom dllm_lite import exercises\nfrom dllm_lite.corrupt import get_schedule",
        look="cosine = get_schedule(\"cosine\")\nt = torch.tensor([0.1, 0.5, 0.9])\n"
             "print(\"alpha(t)  =\", cosine.alpha(t))\nprint(\"alpha'(t) =\", cosine.alpha_prime(t))",
        task=r"""## Your turn

Write `elbo_weight(alpha, alpha_prime, t)`: `alpha` and `alpha_prime` are functions (tensor in,
tensor out) and `t` a tensor of times; return $w(t)$, a tensor of the same shape as `t`.""",
        stub='''def elbo_weight(alpha, alpha_prime, t):
    """w(t) = -alpha'(t) / (1 - alpha(t)), elementwise on t."""
    # TODO: compute w(t) from alpha(t) and alpha_prime(t)
    raise NotImplementedError''',
        check="exercises.check_elbo_weight(elbo_weight)",
        hint=hint(
            idea=["$w(t) = -\\alpha'(t) / (1 - \\alpha(t))$: how fast tokens are being unmasked as time runs "
                  "backwards, $-\\alpha'(t)$, per token that is still masked, $1 - \\alpha(t)$.",
                  "$\\alpha$ decreases, so $\\alpha'(t) \\le 0$: the minus sign makes the weight positive.",
                  "Sanity check: for $\\alpha(t) = 1 - t$ you should get $1/t$."],
            api=["Call the two functions on the whole tensor: `alpha(t)` and `alpha_prime(t)` both return "
                 "tensors of the shape of `t`.",
                 "`-`, `/` and `1 - ...` work elementwise on tensors: no loop and no `.item()` needed.",
                 "Do not hard-code $1/t$: the checker also tries the cosine, quadratic and a cubic schedule."],
            code="""
return -alpha_prime(t) / (1 - alpha(t))  # minus sign: alpha_prime(t) <= 0
"""),
        after=AFTER.format(where="`Schedule.weight` in `dllm_lite/corrupt.py`",
                           mistakes="$w = 1$ (the unweighted loss), a flipped sign, and dividing by $\\alpha(t)$; "
                                    "a cubic schedule makes sure the answer is not hard-coded as $1/t$"),
    ),
    "03_subs": dict(
        title="Exercise 03: the SUBS parameterisation",
        learn=["the two rules of MDLM's SUBS parameterisation: the model never predicts [MASK], and a token "
               "that is already revealed is copied",
               "how to enforce both on a tensor of logits with `-inf`, `scatter` and `torch.where`"],
        math=r"""## The math

The clean data never contains the mask, and the forward process never changes a token that
is not masked. So the denoiser's distribution at position $i$ should be

$$ p_\theta(x_0^i \mid x_t) = \begin{cases}
   \mathrm{softmax}(\ell^i) \text{ with } \ell^i_m = -\infty & \text{if } x_t^i = m \quad\text{(zero masking probability)}\\
   \text{all mass on } x_t^i & \text{if } x_t^i \ne m \quad\text{(carry-over unmasking)}
   \end{cases} $$

With both rules the ELBO only has terms at masked positions: an unmasked position costs
$-\log 1 = 0$. A logit of $-\infty$ has probability exactly 0 after the softmax.""",
        setup="import torch\n\nfrom dllm_lite import exercises\nfrom dllm_lite.model import ModelConfig, Transformer",
        look="torch.manual_seed(0)\nnet = Transformer(ModelConfig(vocab_size=6, n_layer=1, n_head=1, n_embd=8, "
             "seq_len=4))\nwith torch.no_grad():\n    logits = net(torch.tensor([[0, 5, 2, 5]]))  # (1, 4, 6); id 5 is the mask\n"
             "print(\"the library's model already sets the mask column to -inf:\", logits[0, :, 5])",
        task=r"""## Your turn

Write `subs_logits(logits, xt, mask_id)`: `logits` (B, T, V) from a network, `xt` (B, T) the
corrupted ids. Return new logits (B, T, V) where the mask column is $-\infty$ at every
position, and every position with `xt != mask_id` has $-\infty$ everywhere except a finite
logit at `xt` (so that all its probability is on `xt`).""",
        stub='''def subs_logits(logits, xt, mask_id):
    """SUBS: never predict the mask; where xt is revealed, put all the probability on xt."""
    # TODO: logits with the mask column set to -inf (on a copy)
    # TODO: "copy" logits: -inf everywhere except 0 at the id xt holds
    # TODO: choose between the two per position, depending on whether xt is the mask
    raise NotImplementedError''',
        check="exercises.check_subs(subs_logits)",
        hint=hint(
            idea=["Build two candidate sets of logits for every position, then choose between them position by "
                  "position.",
                  "Masked position ($x_t^i = m$): the network's logits, except that the mask token's logit becomes "
                  "$-\\infty$, so its probability is exactly 0; the real tokens' logits stay as they are.",
                  "Revealed position: a one-hot in logit form, one finite logit at $x_t^i$ and $-\\infty$ at every "
                  "other token, so the softmax puts all its mass on $x_t^i$.",
                  "Never make *every* logit of a position $-\\infty$: the softmax of that is NaN."],
            api=["Work on a copy, `out = logits.clone()`, and index the last dimension to reach a column: "
                 "`out[..., j]` is token `j`'s logit at every position, shape (B, T).",
                 "`torch.full_like(logits, float(\"-inf\"))` is an all-$-\\infty$ (B, T, V) tensor; "
                 "`tensor.scatter(dim, index, value)` writes `value` at the positions `index` names along `dim`. "
                 "`index` needs as many dimensions as `tensor`: `xt.unsqueeze(-1)` is (B, T, 1).",
                 "`torch.where(condition, a, b)` broadcasts: a (B, T, 1) condition such as "
                 "`(xt == mask_id).unsqueeze(-1)` picks whole positions of two (B, T, V) tensors."],
            code="""
never_mask = logits.clone()
never_mask[..., mask_id] = float("-inf")  # the mask *column*, at every position
copy = torch.full_like(logits, float("-inf")).scatter(-1, xt.unsqueeze(-1), 0.0)  # one finite logit: xt's
return torch.where((xt == mask_id).unsqueeze(-1), never_mask, copy)
"""),
        after=AFTER.format(where="the `logit_bias` of `Transformer` in `dllm_lite/model.py` (the first rule; "
                                 "the loss applies the second by scoring masked positions only)",
                           mistakes="leaving the mask logit finite (or 0), `-inf` on a whole position (NaN "
                                    "probabilities), the wrong column, and no copy-through"),
    ),
    "04_diffusion_loss": dict(
        title="Exercise 04: the diffusion loss",
        learn=["how the training loss of a masked diffusion model is assembled: cross-entropy at the masked "
               "positions, weighted by $w(t)$, in nats per token",
               "the classic mistakes that still train but optimise the wrong thing: no weight, averaging over "
               "all positions, dividing by the number of masks, letting the network see $x_0$"],
        math=r"""## The math

A Monte Carlo estimate of the negative ELBO from one batch, one time $t_b$ per row:

$$ \mathcal{L} = \frac{1}{B L} \sum_{b=1}^{B} w(t_b) \sum_{i:\, x_t^{b,i} = m} -\log p_\theta(x_0^{b,i} \mid x_t^b) $$

Only masked positions count (SUBS makes the others free), and the sum is divided by all
$B L$ positions, masked or not: that is what makes it nats per token of the data. A model
that predicts the uniform distribution over $V$ real tokens scores exactly $\log V$.""",
        setup="import torch\nimport torch.nn.functional as F\n\nfrom dllm_lite import exercises\n"
              "from dllm_lite.corrupt import corrupt, get_schedule\nfrom dllm_lite.model import ModelConfig, "
              "Transformer",
        look="torch.manual_seed(0)\nnet = Transformer(ModelConfig(vocab_size=11, n_layer=1, n_head=2, n_embd=32, "
             "seq_len=16))\nx0 = torch.randint(0, 10, (4, 16))  # id 10 is the mask\n"
             "t = torch.tensor([0.2, 0.4, 0.6, 0.8])\nxt, is_masked = corrupt(x0, t, 10, \"linear\")\n"
             "weight = get_schedule(\"linear\").weight(t)\nprint(\"logits:\", tuple(net(xt).shape), "
             "\" masked per row:\", is_masked.sum(dim=1).tolist(), \" weight:\", [round(w, 2) for w in weight.tolist()])",
        task=r"""## Your turn

Write `diffusion_loss(net, x0, xt, is_masked, weight)`: `net(xt)` gives logits (B, L, V);
`x0`, `xt`, `is_masked` are (B, L); `weight` is (B,), $w(t_b)$ for each row. Return the loss
above as a 0-d tensor. (With nothing masked, the loss is 0.)""",
        stub='''def diffusion_loss(net, x0, xt, is_masked, weight):
    """(1 / (B L)) * sum over rows b of weight[b] * (cross-entropy summed over the masked positions of row b)."""
    # TODO: logits from the corrupted input
    # TODO: cross-entropy at every position (reduction="none"), shape (B, L)
    # TODO: weight each row, keep the masked positions, sum, divide by B * L
    raise NotImplementedError''',
        check="exercises.check_diffusion_loss(diffusion_loss)",
        hint=hint(
            idea=["The network sees the corrupted $x_t$, never $x_0$: $x_0$ is only the target.",
                  "Take the cross-entropy $-\\log p_\\theta(x_0^{b,i} \\mid x_t^b)$ at every position, keep the masked "
                  "ones, multiply each by its row's weight $w(t_b)$, and add them all up.",
                  "Divide by $B L$, the number of *all* positions, masked or not: not by the number of masks. "
                  "With nothing masked the sum is empty, so the loss is 0 (no NaN)."],
            api=["`net(xt)` returns logits (B, L, V). `F.cross_entropy` wants the classes in dimension 1, "
                 "so give it (B, V, L) logits, `logits.transpose(1, 2)`, with (B, L) targets; "
                 "`reduction=\"none\"` keeps one value per position, (B, L).",
                 "`weight` is (B,): `weight[:, None]` is (B, 1) and broadcasts along L.",
                 "Boolean indexing, `values[is_masked]`, gives a 1-D tensor of the masked entries; the `.sum()` "
                 "of an empty tensor is 0. `x0.numel()` is B * L."],
            code="""
B, L = x0.shape
ce = F.cross_entropy(net(xt).transpose(1, 2), x0, reduction="none")  # (B, L)
return (weight[:, None] * ce)[is_masked].sum() / (B * L)  # all B * L positions, not the masks
"""),
        after=AFTER.format(where="`diffusion_loss` in `dllm_lite/loss.py` (it draws $t$ and $x_t$ itself, and "
                                 "runs the output head only at masked positions)",
                           mistakes="the unweighted loss, the mean over all positions, including unmasked "
                                    "positions, dividing by the number of masks, and `net(x0)` instead of `net(xt)`"),
    ),
    "05_ancestral_step": dict(
        title="Exercise 05: one step of the ancestral sampler",
        learn=["how MDLM generates: the exact reverse of the forward process, from time $t$ to $s < t$",
               "the reveal probability $(\\alpha(s) - \\alpha(t)) / (1 - \\alpha(t))$, and why revealed tokens "
               "never change again"],
        math=r"""## The math

Given $x_0$, a token that is masked at time $t$ is, at the earlier time $s < t$,

$$ q(x_s^i \mid x_t^i = m, x_0^i) = \begin{cases}
   x_0^i & \text{with probability } \dfrac{\alpha(s) - \alpha(t)}{1 - \alpha(t)} \\[4pt]
   m & \text{with probability } \dfrac{1 - \alpha(s)}{1 - \alpha(t)}
   \end{cases} $$

and a token that is not masked stays as it is. The sampler does not know $x_0$, so it
draws the revealed value from the model, $p_\theta(x_0^i \mid x_t)$. At $s = 0$ the
probability is 1: every remaining mask is revealed.""",
        setup="import torch\n\nfrom dllm_lite import exercises, sample",
        look="times = torch.linspace(1, 0, 5)  # a 4-step grid: 1, 0.75, 0.5, 0.25, 0\n"
             "for t, s in zip(times[:-1], times[1:]):\n"
             "    p = sample.reveal_probability(\"linear\", t, s).item()\n"
             "    print(f\"t = {t.item():.2f} -> s = {s.item():.2f}: reveal each mask with probability {p:.3f}\")",
        task=r"""## Your turn

Write `ancestral_step(x, logits, mask_id, t, s, alpha)`: `x` (B, T) ids, some of them
`mask_id`; `logits` (B, T, V) from the model (the mask logit is already $-\infty$); `t` and
`s` floats with $0 \le s < t \le 1$; `alpha` a function (`alpha(0.5)` is a 0-d tensor).
Return the new ids (B, T): each masked position revealed with the probability above, its
value **sampled** from `softmax(logits)` at that position; every other position unchanged.""",
        stub='''def ancestral_step(x, logits, mask_id, t, s, alpha):
    """One MDLM reverse step from t to s < t: reveal masks at random, values sampled from the logits."""
    # TODO: the reveal probability from alpha(s) and alpha(t)
    # TODO: which positions are revealed: masked ones only, each with that probability
    # TODO: a sampled value for every position, from its own softmax(logits)
    # TODO: new ids: the sample where revealed, x everywhere else
    raise NotImplementedError''',
        check="exercises.check_ancestral_step(ancestral_step)",
        hint=hint(
            idea=["Each position that is still masked is revealed independently, with probability "
                  "$(\\alpha(s) - \\alpha(t)) / (1 - \\alpha(t))$. $s$ is the *earlier* time, so "
                  "$\\alpha(s) > \\alpha(t)$; at $s = 0$ the probability is 1.",
                  "A revealed position gets a value *drawn* from the model's distribution at that position, "
                  "$\\mathrm{softmax}(\\ell^i)$: a random sample, not the most likely token.",
                  "A position that was already revealed keeps its token, whatever the model says about it."],
            api=["`alpha(s)` and `alpha(t)` are 0-d tensors, so the probability is a 0-d tensor that broadcasts "
                 "against anything.",
                 "`torch.rand(x.shape) < p` flips one coin per position, (B, T) bool; combine bool tensors with "
                 "`&` (and `x == mask_id` says which positions are masked).",
                 "`torch.distributions.Categorical(logits=logits)` treats the last dimension as the categories "
                 "(a logit of $-\\infty$ just has probability 0); its `.sample()` is (B, T) ids. "
                 "`logits.argmax(-1)` is *not* a sample.",
                 "`torch.where(condition, a, b)` merges the new values into `x` without changing the rest."],
            code="""
p_reveal = (alpha(s) - alpha(t)) / (1 - alpha(t))           # s < t, so alpha(s) > alpha(t)
reveal = (x == mask_id) & (torch.rand(x.shape) < p_reveal)  # (B, T): masked positions only
sampled = torch.distributions.Categorical(logits=logits).sample()  # (B, T), one draw per position
return torch.where(reveal, sampled, x)
"""),
        after=AFTER.format(where="`ancestral_step` in `dllm_lite/sample.py` (it draws in float64 with the "
                                 "Gumbel-max trick)",
                           mistakes="re-sampling tokens that are already revealed, swapping $s$ and $t$, "
                                    "forgetting to divide by $1 - \\alpha(t)$, and the argmax instead of a sample"),
    ),
    "06_confidence_select": dict(
        title="Exercise 06: the confidence sampler's selection step",
        learn=["how LLaDA's sampler chooses which tokens to keep at each step: the most confident predictions "
               "among the masked positions",
               "how to select the top-k of a subset of positions with `masked_fill`, `topk` and `scatter`"],
        math=r"""## The math

At each step the model predicts every masked position, $\hat x^i \sim p_\theta(\cdot \mid x_t)$, with
confidence $c^i = p_\theta(\hat x^i \mid x_t)$. The step keeps the $k$ most confident:

$$ S = \underset{S \subseteq \{i:\, x_t^i = m\},\ |S| = k}{\arg\max} \sum_{i \in S} c^i $$

writes $\hat x^i$ at the positions in $S$, and leaves the other masks for later steps.
Positions that are already revealed are never chosen, however confident they look.""",
        setup="import torch\n\nfrom dllm_lite import exercises, sample",
        look="confidence = torch.tensor([[0.9, 0.2, 0.7, 0.4, 0.8]])\n"
             "is_masked = torch.tensor([[False, True, True, True, False]])\n"
             "print(\"the library picks:\", sample.select_most_confident(confidence, is_masked, 2))",
        task=r"""## Your turn

Write `select_most_confident(confidence, is_masked, k)`: `confidence` (B, T) floats,
`is_masked` (B, T) bool, `k` an int. Return a bool (B, T) tensor that is True at the `k`
masked positions of each row with the highest confidence; if a row has fewer than `k`
masked positions, select all of them. Never select an unmasked position.""",
        stub='''def select_most_confident(confidence, is_masked, k):
    """Bool (B, T): the k most confident masked positions of each row (all of them if fewer)."""
    # TODO: make unmasked positions impossible to pick
    # TODO: the indices of the k highest scores in each row
    # TODO: a bool tensor, True at those indices, and only where a position is masked
    raise NotImplementedError''',
        check="exercises.check_confidence_select(select_most_confident)",
        hint=hint(
            idea=["Within each row, rank the masked positions by confidence and keep the $k$ highest.",
                  "Trick: give every unmasked position a score of $-\\infty$, so that it loses every comparison, "
                  "then take the top $k$ of the whole row.",
                  "If a row has fewer than $k$ masks, its top $k$ has to include some of those $-\\infty$ positions: "
                  "throw them out again at the end by keeping only positions that are masked."],
            api=["`tensor.masked_fill(condition, value)` returns a copy with `value` where the condition is True; "
                 "`~is_masked` flips a bool tensor.",
                 "`tensor.topk(k, dim=1).indices` is a (B, k) tensor of positions (`k = 0` gives (B, 0), which is "
                 "fine).",
                 "To turn (B, k) indices back into a (B, T) bool tensor: start from `torch.zeros_like(is_masked)` "
                 "(all False) and `.scatter(1, indices, True)`. Then `&` with `is_masked`."],
            code="""
scores = confidence.masked_fill(~is_masked, float("-inf"))  # unmasked positions can never win
top = scores.topk(k, dim=1).indices                          # (B, k)
return torch.zeros_like(is_masked).scatter(1, top, True) & is_masked  # & drops -inf picks (fewer than k masks)
"""),
        after=AFTER.format(where="`select_most_confident` in `dllm_lite/sample.py`",
                           mistakes="picking unmasked positions, a top-k that runs into `-inf` positions when a "
                                    "row has fewer than k masks, and picking the least confident"),
    ),
    "07_reveal_counts": dict(
        title="Exercise 07: how many tokens to reveal per step",
        learn=["how a step budget turns into a number of tokens revealed at each step",
               "the off-by-one traps: one count per step, and counts that add up to exactly the number of masks"],
        math=r"""## The math

With $N$ steps on the grid $t_i = 1 - i/N$, the linear schedule has, after step $i$, about
$n\,\alpha(t_i) = n\,i/N$ of the $n$ masks revealed: the same share every step. In whole
tokens, each step reveals $\lfloor n/N \rfloor$ or $\lceil n/N \rceil$, and the counts must
add up to exactly $n$ so that nothing is left masked at the end:

$$ c_1 + \dots + c_N = n, \qquad \max_i c_i - \min_i c_i \le 1. $$""",
        setup="from dllm_lite import exercises, sample",
        look="print(\"linear, 10 masks in 4 steps:\", sample.reveal_counts(10, 4))\n"
             "print(\"cosine, 10 masks in 4 steps:\", sample.reveal_counts(10, 4, \"cosine\"))",
        task=r"""## Your turn

Write `reveal_counts(n_masked, steps)` for the linear schedule: return a list of `steps` ints,
as equal as possible, that add up to `n_masked` (`n_masked` may be 0 or smaller than `steps`).""",
        stub='''def reveal_counts(n_masked, steps):
    """A list of `steps` ints, as equal as possible, summing to n_masked."""
    # TODO: the base count per step, and how many steps must reveal one more
    # TODO: a list with exactly one count per step
    raise NotImplementedError''',
        check="exercises.check_reveal_counts(reveal_counts)",
        hint=hint(
            idea=["Share $n$ masks among $N$ steps as evenly as possible: every step reveals "
                  "$\\lfloor n/N \\rfloor$, and $n \\bmod N$ of the steps (say the first ones) reveal one more.",
                  "That gives exactly $N$ counts that add up to exactly $n$. When $n < N$ some steps reveal 0, "
                  "and when $n = 0$ all of them do."],
            api=["Plain Python, no torch: `divmod(a, b)` returns the quotient and the remainder at once.",
                 "A list comprehension over `range(steps)` makes one count per step; adding a bool to an int "
                 "adds 0 or 1.",
                 "Return a `list` of ints, of length `steps`."],
            code="""
base, extra = divmod(n_masked, steps)
return [base + (i < extra) for i in range(steps)]  # the first `extra` steps reveal one more
"""),
        after=AFTER.format(where="`reveal_counts` in `dllm_lite/sample.py` (it follows any schedule)",
                           mistakes="`steps - 1` or `steps + 1` counts, `n // steps` everywhere (the remainder is "
                                    "lost), and revealing everything in the first step"),
    ),
    "08_infill": dict(
        title="Exercise 08: infilling with `sample.generate`",
        learn=["why a diffusion model can fill a gap in the middle of a text: it sees both sides at once",
               "how to ask `sample.generate` for it: put mask ids inside the prompt"],
        math=r"""## The idea

An autoregressive model only sees the left context. A masked diffusion model is trained to
predict any masked position from everything that is not masked, so a prompt
`left [MASK] [MASK] ... right` is just a partly masked sequence: the sampler fills the masks
and keeps the rest. `sample.generate(net, mask_id=..., length=0, steps=..., prompt=ids)`
does that when `ids` contains `mask_id`; `length` counts the extra masks appended after the
prompt, so 0 here.""",
        setup="import torch\n\nfrom dllm_lite import exercises, sample\nfrom dllm_lite.tokenize import get_tokenizer",
        look="tok = get_tokenizer(\"char\", text=\"abcdefghijklmnopqrstuvwxyz .,\")\n"
             "ids = tok.encode(\"the cat\") + [tok.mask_id] * 3\nprint(ids)\nprint(tok.decode(ids))",
        task=r"""## Your turn

Write `infill(net, tokenizer, left, right, n_blank, steps, generator=None)`: build the prompt
`left`, then `n_blank` masks, then `right`; fill it with `sample.generate` (default strategy,
`length=0`, `steps=steps`, `generator=generator`); return the decoded text of the first row.
The checker uses an untrained model, so the blanks are filled with nonsense: it checks that
you asked for the right thing. With a model you trained (see `notebooks/`), try it on real text.""",
        stub='''def infill(net, tokenizer, left, right, n_blank, steps, generator=None):
    """left + n_blank generated tokens + right, filled by sample.generate; returns the text."""
    # TODO: the prompt ids, with tokenizer.mask_id for every blank
    # TODO: sample.generate(...) with length=0 and the generator
    # TODO: decode the first row
    raise NotImplementedError''',
        check="exercises.check_infill(infill)",
        hint=hint(
            idea=["The prompt is one sequence of ids: the left text, then $n$ masks, then the right text. The "
                  "sampler fills exactly the masks it finds and never touches the other ids.",
                  "Nothing needs to be appended after the prompt, so the number of extra generated tokens is 0.",
                  "Pass the caller's random generator through, so that the same seed gives the same text; "
                  "then turn the ids of the one generated row back into text."],
            api=["`tokenizer.encode(text)` returns a list of ints and `tokenizer.mask_id` is the mask's id; "
                 "lists join with `+`, and `[item] * n` repeats an item.",
                 "`sample.generate(net, mask_id=..., length=..., steps=..., prompt=..., generator=...)`: every "
                 "argument after `net` is keyword-only. It returns a (batch_size, len(prompt) + length) tensor, "
                 "here (1, len(prompt)).",
                 "`tokenizer.decode(ids)` takes one row of ids."],
            code="""
prompt = tokenizer.encode(left) + [tokenizer.mask_id] * n_blank + tokenizer.encode(right)
ids = sample.generate(net, mask_id=tokenizer.mask_id, length=0, steps=steps, prompt=prompt, generator=generator)
return tokenizer.decode(ids[0])  # ids is (1, len(prompt))
"""),
        after=AFTER.format(where="`generate` in `dllm_lite/sample.py`, which also offers `strategy=\"ancestral\"` "
                                 "and `\"threshold\"` and semi-autoregressive blocks",
                           mistakes="appending the blanks after the whole text, and not passing the generator"),
    ),
    "09_block_mask": dict(
        title="Exercise 09: block diffusion's attention mask",
        learn=["how a block diffusion model (BD3-LM) trains every block in one forward pass over the noisy and the "
               "clean copy of a sequence",
               "which positions each query may see, and why a single wrong cell lets the answer leak in",
               "how one boolean mask turns one network into anything from a GPT (blocks of 1) to MDLM (one block)"],
        math=r"""## The math

Cut a sequence of length $L$ into blocks of $K$ tokens; position $i$ is in block $b(i) = \lfloor i / K \rfloor$.
A block diffusion model predicts each block from its own noisy tokens and the *clean* blocks before it:
$p_\theta(x^b \mid x_t^b, x^{<b})$. Training runs the network once over the concatenation $[x_t, x_0]$,
$2L$ positions: rows and columns $0 \dots L-1$ are the noisy copy, $L \dots 2L-1$ the clean one.
A query may attend to a key when

| query \\ key | noisy key $j$ | clean key $j$ |
|---|---|---|
| noisy query $i$ | $b(j) = b(i)$ | $b(j) < b(i)$ |
| clean query $i$ | never | $b(j) \le b(i)$ |

The noisy block sees itself in both directions (it is denoised all at once) and the clean blocks before
it; the clean copy is *block*-causal and builds the keys and values the later noisy blocks read.""",
        setup="import torch\n\nfrom dllm_lite import exercises",
        look="seq_len, block_size = 8, 2\nprint(\"block of each position:\", (torch.arange(seq_len) // block_size).tolist())",
        task=r"""## Your turn

Write `block_mask(seq_len, block_size)`: a boolean tensor of shape `(2 * seq_len, 2 * seq_len)`, with
`mask[q, k]` True where query `q` (a row) may attend to key `k` (a column), following the table above.
No loops needed: compute the block of every position once, compare blocks with broadcasting
(`blocks[:, None] == blocks[None, :]`), and put four `(L, L)` quarters together with `torch.cat`.""",
        stub='''def block_mask(seq_len, block_size):
    """(2L, 2L) bool: rows are queries, columns keys; 0..L-1 the noisy copy, L..2L-1 the clean one."""
    # TODO: the block of every position, (L,)
    # TODO: the four (L, L) quarters of the table
    # TODO: put them together: noisy rows on top, clean rows below
    raise NotImplementedError''',
        check="exercises.check_block_mask(block_mask)",
        hint=hint(
            idea=["Every cell of the table depends only on two block numbers, $b(i) = \\lfloor i / K \\rfloor$ of "
                  "the query and $b(j)$ of the key.",
                  "Two $L \\times L$ comparisons over all (query, key) pairs are enough: *same block*, "
                  "$b(j) = b(i)$, and *key's block earlier*, $b(j) < b(i)$.",
                  "The four quarters: noisy query to noisy key is *same*; noisy to clean is *earlier*; clean to "
                  "noisy is never; clean to clean is *same or earlier*.",
                  "Rows are queries and columns keys: the noisy rows form the top half, the clean rows the bottom; "
                  "within each half the noisy keys are on the left."],
            api=["`torch.arange(seq_len) // block_size` is the (L,) block of every position.",
                 "`v[:, None]` is (L, 1) and `v[None, :]` is (1, L); comparing them (`==`, `>`) broadcasts to a "
                 "(L, L) bool tensor with the query along the rows and the key along the columns. `|` is "
                 "elementwise *or*, `torch.zeros_like(m)` an all-False tensor like `m`.",
                 "`torch.cat([a, b], dim=1)` puts two (L, L) quarters side by side, (L, 2L); "
                 "`torch.cat([top, bottom], dim=0)` stacks two halves, (2L, 2L).",
                 "The result must be `torch.bool`, not ints or floats."],
            code="""
blocks = torch.arange(seq_len) // block_size      # (L,)
same = blocks[:, None] == blocks[None, :]         # (L, L) query and key in one block
before = blocks[:, None] > blocks[None, :]        # (L, L) the key's block comes first
noisy = torch.cat([same, before], dim=1)          # noisy queries: own noisy block, earlier clean blocks
clean = torch.cat([torch.zeros_like(same), same | before], dim=1)  # clean queries: clean blocks up to their own
return torch.cat([noisy, clean], dim=0)
"""),
        after=AFTER.format(where="`block_attention_mask` in `dllm_lite/block.py`, and notebook 11, which trains models "
                                 "with it",
                           mistakes="a noisy block seeing the clean copy of itself or later clean blocks, the clean "
                                    "copy attending to noisy tokens or not to itself, a causal triangle inside a block, "
                                    "block edges off by one, and rows and columns swapped"),
    ),
    "10_sft_loss": dict(
        title="Exercise 10: the diffusion SFT loss, learning to answer prompts",
        learn=["how a masked diffusion model is fine-tuned on (prompt, response) pairs, as LLaDA does it: the prompt "
               "stays clean, only the response region is masked and scored",
               "why the end-of-text padding after an answer is scored too, and what each row's loss is divided by",
               "how to turn per-row lengths into a (B, L) mask with `torch.arange` and broadcasting"],
        math=r"""## The math

Supervised fine-tuning (SFT) teaches a model to answer. Each row of length $L$ holds a prompt of
$P_b$ tokens and then the *response region*, positions $P_b \dots L-1$: the response, its
end-of-text token (eot), and eot padding up to the end of the row (`dllm_lite/pairs.py` packs them).
At answer time the model is given the prompt and has to produce the region, so in training the
prompt is never masked and never scored.

Each region position is masked with probability $1 - \alpha(t_b)$, one time $t_b$ per row. For the
linear schedule, $w(t) = 1/t$ (exercise 02), and the loss is

$$ \mathcal{L}_{SFT} = \frac{1}{B} \sum_{b=1}^{B} \frac{w(t_b)}{L - P_b}
   \sum_{i \ge P_b:\ x_t^{b,i} = m} -\log p_\theta(x_0^{b,i} \mid x_t^b) $$

It is the loss of exercise 04 with two changes: only positions $i \ge P_b$ count, and row $b$ is
divided by its own region length $L - P_b$ instead of $L$. Each row then bounds the negative
log-likelihood of its region given its prompt, per region token, and the batch takes the mean over rows.

The padding belongs to the region: it is masked and scored like the answer. Predicting eot at a
position is how the model says "the answer is over by here", and the padding is where it learns to
say it. Here the network has already run: `ce[b, i]` is $-\log p_\theta(x_0^{b,i} \mid x_t^b)$ at every
position, and `is_masked` was drawn over the *whole* row, prompt included, the way `corrupt` draws it
in exercise 01. Keeping the prompt out is your job.""",
        setup="import torch\n\nfrom dllm_lite import exercises, loss, pairs\nfrom dllm_lite.corrupt import corrupt\n"
              "from dllm_lite.tokenize import CharTokenizer",
        look='''tok = CharTokenizer(list("0123456789+="))
batch = pairs.pack_pairs(tok, ["12+7=", "3+4="], ["19", "7"], seq_len=10)  # rows: prompt, response, eot, padding
x0, prompt_len = batch.ids, batch.prompt_len  # (2, 10), (2,)
B, L = x0.shape
t = torch.tensor([0.6, 0.3])
_, is_masked = corrupt(x0, t, tok.mask_id, "linear", generator=torch.Generator().manual_seed(0))  # whole rows
region = loss.response_mask(prompt_len, L)  # (B, L): True at positions i >= prompt_len


def marks(flags):
    return " ".join("x" if flag else "." for flag in flags.tolist())


for b in range(B):
    P = prompt_len[b].item()
    print(f"row {b}: prompt_len P = {P}, region length L - P = {L - P}, w(t) = 1/{t[b].item():.1f}")
    print("  token     ", " ".join("$" if i == tok.eot_id else tok.chars[i] for i in x0[b].tolist()), "  ($ = eot)")
    print("  part      ", " ".join("r" if r else "p" for r in region[b].tolist()), "  (p = prompt, r = region)")
    print("  is_masked ", marks(is_masked[b]))
    print("  scored    ", marks(is_masked[b] & region[b]))
print("row b's loss: w(t_b) / (L - P_b) times the sum of ce where scored; the batch's: the mean over rows")''',
        task=r"""## Your turn

Write `sft_loss(ce, is_masked, t, prompt_len)`:

- `ce`: (B, L) floats, the cross-entropy at every position, as if every position had been predicted;
- `is_masked`: (B, L) bool, the positions the forward process masked, prompts included;
- `t`: (B,) each row's time in $(0, 1]$, linear schedule, so $w(t) = 1/t$;
- `prompt_len`: (B,) long, each row's $P_b$; it may be 0 (no prompt) and is always below $L$.

Return the loss as a one-number tensor computed from `ce` with tensor operations, so that training
can call `.backward()` on it. A row with no mask in its region adds 0. No loop over rows is needed.""",
        stub='''def sft_loss(ce, is_masked, t, prompt_len):
    """The diffusion SFT loss, a 0-d tensor, from the per-position cross-entropies ce (B, L)."""
    # TODO: the response region, (B, L) bool: True at positions i >= prompt_len[b]
    # TODO: the positions that count: masked and in the region
    # TODO: each row's sum of ce over them, times w(t) = 1/t, divided by its region length L - prompt_len
    # TODO: the mean over the rows
    raise NotImplementedError''',
        check="exercises.check_sft_loss(sft_loss)",
        hint=hint(
            idea=["Row $b$'s response region is the positions $i \\ge P_b$: the answer, its eot and the eot padding. "
                  "A position counts when it is masked *and* in the region; a masked prompt position never counts.",
                  "Each row: add up the cross-entropy at its counted positions, multiply by $w(t_b) = 1/t_b$, and "
                  "divide by its region length $L - P_b$ (not by $L$, not by its number of masks).",
                  "The loss is the mean of those $B$ numbers. A row with nothing counted adds 0 by itself: no "
                  "special case is needed."],
            api=["`torch.arange(L)` is (L,); `[None, :]` makes it (1, L), and `prompt_len[:, None]` is (B, 1): "
                 "comparing the two with `>=` broadcasts to a (B, L) bool tensor. `loss.response_mask(prompt_len, L)` "
                 "is the library's version of exactly that.",
                 "Combine bool tensors with `&`. Multiplying `ce` by a bool tensor zeroes the other positions and "
                 "keeps the rows apart; `ce[mask]` would flatten all rows into one.",
                 "`.sum(dim=1)` gives one number per row, (B,), the same shape as `t` and `L - prompt_len`, so "
                 "the division is elementwise; `.mean()` finishes.",
                 "Stay with tensor operations on `ce` (no `.item()`, no `torch.tensor(...)` around a result), "
                 "so that the gradient reaches `ce`."],
            code="""
L = ce.shape[1]
region = torch.arange(L)[None, :] >= prompt_len[:, None]  # (B, L), or loss.response_mask(prompt_len, L)
per_row = (ce * (is_masked & region)).sum(dim=1)          # (B,) masked region positions, eot padding included
return (per_row / (t * (L - prompt_len))).mean()          # w(t) = 1/t, each row over L - P_b, mean over rows
"""),
        after=AFTER.format(where="`sft_loss` in `dllm_lite/loss.py`, which draws the times and the masks itself, "
                                 "keeps the prompt clean before the network runs, and leaves the division to "
                                 "`weigh(..., lengths=L - prompt_len)`",
                           mistakes="scoring the prompt (alone, or as exercise 04's loss over whole rows), dividing "
                                    "by $L$, by the number of masks or by the batch's total region length, the plain "
                                    "mean over masked tokens, no weight or $w(t) = t$, summing the rows, a region "
                                    "that starts one position late or stops before the row's end (the padding is "
                                    "scored), NaN from a row with no mask, and a loss cut off from `ce`"),
    ),
    "11_threshold_reveal": dict(
        title="Exercise 11: threshold decoding, several tokens per network call",
        learn=["how a sampler can reveal many tokens in one network call where the model is sure, and one where it "
               "is not (Fast-dLLM's threshold rule)",
               "why the rule needs a fallback, so that every call makes progress",
               "how to combine two boolean selections of positions with `&` and `|`"],
        math=r"""## The math

Confidence decoding (exercise 06) reveals a fixed number $k$ of tokens per call, whatever the
model thinks. Threshold decoding lets the model decide. At each call the model draws a token
$\hat x^i$ for every masked position, with confidence $c^i = p_\theta(\hat x^i \mid x_t)$, and
the step reveals

$$ S = \{\, i : x_t^i = m,\ c^i > \tau \,\} \ \cup\ \{\, i^\star \,\}, \qquad
   i^\star = \underset{i:\ x_t^i = m}{\arg\max}\ c^i . $$

The first set is every masked position the model is sure of: when it is sure, the product of the
marginals it samples from is close to the joint, so revealing them together costs little (notebook
14 shows what it costs when it is not). The second is the fallback: if nothing is above $\tau$, the
single most confident masked position is revealed anyway, as confidence decoding with $k = 1$ would.
Without it a call could reveal nothing, and the sampler would call the network again and again with
the same input. A row with no mask left reveals nothing.""",
        setup="import torch\n\nfrom dllm_lite import exercises, sample",
        look="confidence = torch.tensor([[0.97, 0.30, 0.92, 0.60], [0.40, 0.85, 0.20, 0.99]])\n"
             "is_masked = torch.tensor([[True, True, True, False], [True, True, True, False]])\n"
             "print(\"the library reveals:\", sample.threshold_reveal(confidence, is_masked, 0.9))",
        task=r"""## Your turn

Write `threshold_reveal(confidence, is_masked, threshold)`: `confidence` (B, T) floats,
`is_masked` (B, T) bool, `threshold` a float $\tau$. Return a bool (B, T) tensor that is True at
every masked position whose confidence is above $\tau$ (strictly), and also at the most confident
masked position of each row that has a mask. Never select an unmasked position.""",
        stub='''def threshold_reveal(confidence, is_masked, threshold):
    """Bool (B, T): every masked position above the threshold, and each row's most confident masked one."""
    # TODO: the masked positions whose confidence is above the threshold
    # TODO: the most confident masked position of each row (none in a row with no mask)
    # TODO: both together
    raise NotImplementedError''',
        check="exercises.check_threshold_reveal(threshold_reveal)",
        hint=hint(
            idea=["Two sets of positions, then their union. The first: masked and more confident than $\\tau$.",
                  "The second: in each row, the single masked position with the highest confidence. It may already "
                  "be in the first set; then the union changes nothing. It matters in a row where no masked "
                  "position reaches $\\tau$.",
                  "Already revealed positions are often the most confident of all: leave them out of both sets. "
                  "A row with no mask has no second set either."],
            api=["Compare `confidence` with the threshold, and keep only masked positions with `&`: a (B, T) bool "
                 "tensor.",
                 "Exercise 06's `select_most_confident(confidence, is_masked, k)` with `k = 1` is the second set; "
                 "`sample.select_most_confident` is the library's, if you did not keep yours.",
                 "`|` is the union of two bool tensors of the same shape."],
            code="""
above = is_masked & (confidence > threshold)                   # (B, T) sure enough to commit now
best = sample.select_most_confident(confidence, is_masked, 1)  # (B, T) one per row that has a mask
return above | best
"""),
        after=AFTER.format(where="`threshold_reveal` in `dllm_lite/sample.py`, and where `_diffusion` calls it "
                                 "(on the last step of a block it reveals all that is left instead)",
                           mistakes="no fallback (a call that reveals nothing), only the single best position (that "
                                    "is confidence decoding with $k = 1$), choosing revealed positions again, the "
                                    "row's best position whether masked or not, and the wrong threshold test"),
    ),
}


def build(name, spec):
    """The notebook for one exercise, not yet run."""
    learn = "\n".join(f"- {item}" for item in spec["learn"])
    cells = [
        new_markdown_cell(f"# {spec['title']}\n\n**What you will learn**\n\n{learn}\n\n"
                          "Fill in the function below, run its check cell, and read the verdict: it says what "
                          "is wrong, on which input, and gives a hint. Re-run the check until it says ✓."),
        new_markdown_cell(spec["math"]),
        new_code_cell(spec["setup"]),
        new_markdown_cell("A look at the inputs:"),
        new_code_cell("# NBVAL_CHECK_OUTPUT\n" + spec["look"]),
        new_markdown_cell(spec["task"]),
        new_code_cell(spec["stub"]),
        new_code_cell("# NBVAL_CHECK_OUTPUT\n" + spec["check"]),
        new_markdown_cell(spec["hint"]),
        new_markdown_cell(spec["after"]),
    ]
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


def main(numbers):
    from nbclient import NotebookClient  # here, so that tests can import the notebook text without it

    for name, spec in NOTEBOOKS.items():
        if numbers and name[:2] not in numbers:
            continue
        notebook = build(name, spec)
        NotebookClient(notebook, kernel_name="python3", timeout=300,
                       resources={"metadata": {"path": str(EXERCISES_DIR)}}).execute()
        path = EXERCISES_DIR / f"{name}.ipynb"
        nbformat.write(notebook, path)
        print(f"wrote {path.relative_to(EXERCISES_DIR.parent)}")


if __name__ == "__main__":
    main(sys.argv[1:])
