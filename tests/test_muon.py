"""Muon: the orthogonalisation, the two update rules checked against their formulas, the split."""

import math

import pytest
import torch

from conftest import tiny_net
from dllm_lite.muon import Muon, build_optimizer, orthogonalize


@pytest.mark.parametrize("shape", [(48, 16), (16, 48), (32, 32)])
def test_orthogonalize_sets_singular_values_near_one(shape):
    gen = torch.Generator().manual_seed(0)
    k = min(shape)
    left, _ = torch.linalg.qr(torch.randn(shape[0], k, generator=gen))
    right, _ = torch.linalg.qr(torch.randn(shape[1], k, generator=gen))
    g = left @ torch.diag(torch.logspace(0, -2, k)) @ right.T  # singular values from 1 down to 0.01
    u = orthogonalize(g)
    s = torch.linalg.svdvals(u)
    assert u.shape == g.shape and u.dtype == g.dtype
    assert s.min() > 0.5 and s.max() < 1.25, s  # Jordan's coefficients land in about [0.7, 1.2]
    exact = torch.linalg.svd(g, full_matrices=False)
    cosine = (u * (exact.U @ exact.Vh)).sum() / (u.norm() * (exact.U @ exact.Vh).norm())
    assert cosine > 0.97  # and points where U V^T points


def test_orthogonalize_rejects_a_vector():
    with pytest.raises(ValueError, match="2-D"):
        orthogonalize(torch.randn(5))


def test_orthogonalize_a_stack_equals_one_at_a_time():
    for shape in [(3, 8, 20), (2, 20, 8)]:
        stack = torch.randn(shape, generator=torch.Generator().manual_seed(1))
        one_by_one = torch.stack([orthogonalize(m) for m in stack])
        assert torch.allclose(orthogonalize(stack), one_by_one, atol=1e-5)


def test_adamw_groups_match_torch_adamw():
    torch.manual_seed(0)
    a, b = torch.randn(7, requires_grad=True), torch.randn(3, 4, requires_grad=True)
    a2, b2 = a.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    ours = Muon([{"params": [a], "use_muon": False, "weight_decay": 0.0},
                 {"params": [b], "use_muon": False, "weight_decay": 0.1}], lr=1e-2, betas=(0.9, 0.95))
    ref = torch.optim.AdamW([{"params": [a2], "weight_decay": 0.0}, {"params": [b2], "weight_decay": 0.1}],
                            lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    for step in range(5):
        grads = torch.randn(7), torch.randn(3, 4)
        for params, opt in (((a, b), ours), ((a2, b2), ref)):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()
    assert torch.allclose(a, a2, atol=1e-6) and torch.allclose(b, b2, atol=1e-6)


def test_muon_rule_follows_its_formula():
    torch.manual_seed(0)
    w = torch.randn(6, 10, requires_grad=True)
    w0, lr, mu, wd = w.detach().clone(), 0.01, 0.95, 0.1
    opt = Muon([w], lr=lr, momentum=mu, weight_decay=wd)
    g1, g2 = torch.randn(6, 10), torch.randn(6, 10)
    w.grad = g1.clone()
    opt.step()
    w.grad = g2.clone()
    opt.step()
    m1 = (1 - mu) * g1
    m2 = mu * m1 + (1 - mu) * g2
    scale = 0.2 * math.sqrt(10)
    w1 = w0 * (1 - lr * wd) - lr * scale * orthogonalize(g1 + mu * (m1 - g1))
    w2 = w1 * (1 - lr * wd) - lr * scale * orthogonalize(g2 + mu * (m2 - g2))
    assert torch.allclose(w.detach(), w2, atol=1e-6)


def test_muon_step_batches_by_shape_without_mixing_matrices():
    torch.manual_seed(0)
    ws = [torch.randn(6, 10, requires_grad=True), torch.randn(6, 10, requires_grad=True),
          torch.randn(10, 6, requires_grad=True)]  # two share a shape, so they are orthogonalised as one stack
    before, grads = [w.detach().clone() for w in ws], [torch.randn(w.shape) for w in ws]
    lr, mu = 0.01, 0.95
    opt = Muon(ws, lr=lr, momentum=mu)
    for w, g in zip(ws, grads):
        w.grad = g.clone()
    opt.step()
    for w, w0, g in zip(ws, before, grads):
        expected = w0 - lr * 0.2 * math.sqrt(10) * orthogonalize(g + mu * ((1 - mu) * g - g))
        assert torch.allclose(w.detach(), expected, atol=1e-6)


def test_muon_rule_refuses_a_vector():
    with pytest.raises(ValueError, match="use_muon=False"):
        Muon([torch.zeros(4, requires_grad=True)])


def test_build_optimizer_sorts_every_parameter_once():
    net = tiny_net(conv=3)
    opt = build_optimizer(net, "muon", lr=1e-3, weight_decay=0.1)
    seen = [p for g in opt.param_groups for p in g["params"]]
    assert len(seen) == len(list(net.parameters())) and len({id(p) for p in seen}) == len(seen)
    names = {id(p): n for n, p in net.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            if group["use_muon"]:
                assert names[id(p)].startswith("blocks.") and p.ndim == 2
            if p.ndim < 2:
                assert group["weight_decay"] == 0.0 and not group["use_muon"]
    adamw = {names[id(p)] for g in opt.param_groups if not g["use_muon"] for p in g["params"]}
    assert "embed.weight" in adamw and "blocks.0.mix.0.weight" in adamw  # the conv taps are not matrices
    assert isinstance(build_optimizer(net, "adamw", lr=1e-3, weight_decay=0.1), torch.optim.AdamW)
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        build_optimizer(net, "sgd", lr=1e-3, weight_decay=0.1)


def test_muon_trains_and_round_trips_its_state():
    torch.manual_seed(0)
    net = tiny_net()
    opt = build_optimizer(net, "muon", lr=3e-3, weight_decay=0.0)
    x = torch.randint(0, net.cfg.vocab_size - 1, (4, net.cfg.seq_len))
    losses = []
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(net(x).flatten(0, 1), x.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5
    again = build_optimizer(net, "muon", lr=3e-3, weight_decay=0.0)
    again.load_state_dict(opt.state_dict())
    for group_a, group_b in zip(opt.param_groups, again.param_groups):
        for p in group_a["params"]:
            for key, value in opt.state[p].items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(again.state[p][key]))


def test_muon_lr_scales_only_the_muon_group():
    net = tiny_net()
    opt = build_optimizer(net, "muon", lr=3e-3, weight_decay=0.0, muon_lr=6e-3)
    for group in opt.param_groups:
        assert group["lr_scale"] == (2.0 if group["use_muon"] else 1.0)
        assert group["lr"] == pytest.approx(3e-3 * group["lr_scale"])
    with pytest.raises(ValueError, match="muon_lr is set but the optimizer is 'adamw'"):
        build_optimizer(net, "adamw", lr=3e-3, weight_decay=0.0, muon_lr=6e-3)
