r"""Checkers for the course exercises in `exercises/`: is the student's function right?

Each `check_*` takes the student's function, runs it beside the library's own code on
seeded random inputs, prints a verdict and returns True or False. A failure names what
was wrong, on which input, what was expected and what came back, and gives a hint.
A checker never raises: a notebook that still holds its `raise NotImplementedError`
stub runs from top to bottom and says "not implemented yet".

    exercise             checker                   compared with
    01 corrupt           check_corrupt             corrupt.corrupt (mask rate 1 - alpha(t))
    02 elbo_weight       check_elbo_weight         corrupt.Schedule.weight
    03 subs_logits       check_subs                the SUBS rules (mask never predicted, copy-through)
    04 diffusion_loss    check_diffusion_loss      loss.diffusion_loss
    05 ancestral_step    check_ancestral_step      sample.reveal_probability, the logits' softmax
    06 select_most_conf. check_confidence_select   sample.select_most_confident
    07 reveal_counts     check_reveal_counts       the rules sample.reveal_counts obeys (linear)
    08 infill            check_infill              sample.generate with the same seed
    09 block_mask        check_block_mask          block.block_attention_mask (BD3-LM's training pass)
    10 sft_loss          check_sft_loss            loss.weigh with lengths = L - prompt_len (LLaDA's SFT loss)
    11 threshold_reveal  check_threshold_reveal    sample.threshold_reveal (Fast-dLLM's parallel rule)

Statistical checks (mask rates, reveal rates, token frequencies) draw enough samples
that a right answer lands within 5 standard errors of its target while the classic
mistakes miss by many; the random state is seeded and restored, so verdicts never change.

The checkers live in three files, along the course's parts, and are imported from here:
`exercises_loss.py` (01-04, the forward process and the loss), `exercises_sampling.py`
(05-08 and 11, sampling) and `exercises_extensions.py` (09-10, block diffusion and prompt/response).

References: Sahoo et al. 2024 (MDLM), sec. 3; Nie et al. 2025 (LLaDA), sec. 2.3 (SFT) and 2.4.
"""

from .exercises_loss import check_corrupt, check_diffusion_loss, check_elbo_weight, check_subs
from .exercises_sampling import (check_ancestral_step, check_confidence_select, check_infill, check_reveal_counts,
                                 check_threshold_reveal)
from .exercises_extensions import check_block_mask, check_sft_loss

__all__ = [
    "check_corrupt", "check_elbo_weight", "check_subs", "check_diffusion_loss",
    "check_ancestral_step", "check_confidence_select", "check_reveal_counts", "check_infill", "check_block_mask",
    "check_sft_loss", "check_threshold_reveal",
]
