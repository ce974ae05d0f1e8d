"""Our RegNet stage against timm's, which HumanOmni builds its C-Abstractor with (timm is the reference here)."""

from __future__ import annotations

import pytest
import torch
from timm.layers import LayerNorm2d
from timm.models.regnet import RegStage as TimmRegStage
from torch import nn

from src.models.projectors import RegStage


def _timm_stage(depth: int, in_chs: int, out_chs: int) -> nn.Module:
    # what HumanOmni's C-Abstractor builds (honeybee's RegStage call)
    return TimmRegStage(
        depth=depth,
        in_chs=in_chs,
        out_chs=out_chs,
        stride=1,
        dilation=1,
        act_layer=nn.SiLU,
        norm_layer=LayerNorm2d,
    )


@pytest.mark.parametrize(("depth", "in_chs", "out_chs"), [(2, 8, 16), (3, 16, 16), (1, 12, 8)])
def test_reg_stage_matches_timm(depth: int, in_chs: int, out_chs: int) -> None:
    torch.manual_seed(0)
    reference = _timm_stage(depth, in_chs, out_chs)
    torch.manual_seed(0)
    ours = RegStage(depth, in_chs, out_chs)
    theirs = reference.state_dict()
    mine = ours.state_dict()
    assert {k: tuple(v.shape) for k, v in mine.items()} == {k: tuple(v.shape) for k, v in theirs.items()}
    # same parameters in the same creation order: a fresh model initialises bit-identically
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    for param in reference.parameters():  # non-trivial norms and biases
        param.data.add_(0.1 * torch.randn_like(param))
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, in_chs, 5, 5)
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-6)
