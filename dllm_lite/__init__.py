"""dllm_lite: a small, tested teaching library for masked diffusion language models.

The concepts, one module each, in the order a reader meets them:
`tokenize` (text <-> ids and the [MASK] id), `corrupt` (the forward process),
`model` (the denoiser), `loss` (the ELBO), `sample` (the reverse process).
The commands `train`, `generate` and `bench` are run with `python -m dllm_lite.<name>`.
"""

__version__ = "0.1.0"
