"""StyleGAN2 losses: non-saturating logistic loss, lazy R1, optional path-length penalty.

The loop calls one method per training phase and back-propagates what it returns, scaled by
the phase's interval for the lazy regularisers (a penalty applied every k-th step with weight
k has the same expected gradient as one applied every step). Which networks need gradients
is the loop's business; these methods only build the graphs.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..gan.stylegan2 import Generator
from .networks import Discriminator


class GenOutput(NamedTuple):
    """Generated images and the styles that made them."""

    img: Tensor  # [N, C, H, W], about [-1, 1]
    ws: Tensor  # [N, L, w_dim]


class StyleGAN2Loss:
    """The losses of StyleGAN2 (Karras et al. 2020), as in NVIDIA's ``StyleGAN2Loss``.

    Args:
        G: the generator being trained.
        D: the discriminator being trained.
        r1_gamma: weight of the R1 penalty ``gamma / 2 * |grad D(real)|^2``.
        style_mixing_prob: probability that a batch mixes two latents at a random layer; it
            keeps neighbouring styles decorrelated, which is what lets a drag move one
            region without dragging the whole face along.
        pl_weight: weight of the path-length penalty (0 = off). It makes W smoother, at the
            price of a double backward through G on a half batch.
        pl_batch_shrink: the path-length penalty uses ``N // pl_batch_shrink`` samples.
        pl_decay: rate of the running mean of path lengths.
    """

    def __init__(
        self,
        G: Generator,
        D: Discriminator,
        *,
        r1_gamma: float,
        style_mixing_prob: float = 0.9,
        pl_weight: float = 0.0,
        pl_batch_shrink: int = 2,
        pl_decay: float = 0.01,
    ) -> None:
        if r1_gamma < 0 or pl_weight < 0 or not 0 <= style_mixing_prob <= 1:
            raise ValueError(
                f"need r1_gamma >= 0, pl_weight >= 0, 0 <= style_mixing_prob <= 1; got "
                f"{r1_gamma}, {pl_weight}, {style_mixing_prob}"
            )
        self.G, self.D = G, D
        self.r1_gamma, self.style_mixing_prob = r1_gamma, style_mixing_prob
        self.pl_weight, self.pl_batch_shrink, self.pl_decay = pl_weight, pl_batch_shrink, pl_decay
        self.pl_mean = torch.zeros([])

    def run_G(self, z: Tensor, *, update_emas: bool = False) -> GenOutput:
        """Generate with random noise and (with ``style_mixing_prob``) two mixed latents.

        Args:
            z: ``[N, z_dim]`` latents.
            update_emas: let the mapping network update its running mean of w.
        """
        ws = self.G.mapping(z, None, update_emas=update_emas)  # [N, L, w_dim]
        if self.style_mixing_prob > 0 and torch.rand([]).item() < self.style_mixing_prob:
            cutoff = int(torch.randint(1, ws.shape[1], []).item())
            ws2 = self.G.mapping(torch.randn_like(z), None, update_emas=False)
            ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        # Training uses the unfused modulated conv: one shared-weight conv over the batch.
        img = self.G.synthesis(ws, noise_mode="random", fused_modconv=False)
        return GenOutput(img, ws)

    def generator_loss(self, z: Tensor) -> Tensor:
        """Non-saturating loss ``softplus(-D(G(z)))``, mean over the batch."""
        img = self.run_G(z).img
        return F.softplus(-self.D(img)).mean()

    def path_length_penalty(self, z: Tensor) -> Tensor:
        """``pl_weight * (|J_w^T y| - a)^2``, ``a`` the running mean of the lengths.

        Args:
            z: ``[N, z_dim]``; the first ``N // pl_batch_shrink`` are used.

        Returns:
            The weighted penalty, mean over the samples (0 when ``pl_weight`` is 0).
        """
        if self.pl_weight == 0:
            return z.new_zeros([])
        n = max(z.shape[0] // self.pl_batch_shrink, 1)
        img, ws = self.run_G(z[:n])
        noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()  # [n]
        self.pl_mean = self.pl_mean.lerp(lengths.mean().detach(), self.pl_decay)
        penalty = (lengths - self.pl_mean).square() * self.pl_weight
        return (penalty + img[:, 0, 0, 0] * 0).mean()  # keep every G output in the graph

    def discriminator_loss(self, real: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """``softplus(D(G(z)))`` and ``softplus(-D(real))``, each a batch mean.

        The generated images are made without gradients (G is not trained in this phase)
        and update the generator's running mean of w, as NVIDIA's loop does.

        Returns:
            ``(loss_fake, loss_real)``.
        """
        with torch.no_grad():
            fake = self.run_G(z, update_emas=True).img
        loss_fake = F.softplus(self.D(fake)).mean()
        loss_real = F.softplus(-self.D(real)).mean()
        return loss_fake, loss_real

    def r1_penalty(self, real: Tensor) -> Tensor:
        """``r1_gamma / 2 * |grad_x D(x)|^2`` on real images, mean over the batch."""
        real = real.detach().requires_grad_(True)
        logits = self.D(real)
        (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
        penalty = grad.square().sum(dim=[1, 2, 3]) * (self.r1_gamma / 2)
        return (penalty + logits[:, 0] * 0).mean()
