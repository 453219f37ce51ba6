"""A small landmark CNN trained on rendered faces: the eyes of our benchmarks.

It does two jobs that pretrained ImageNet networks do elsewhere (none can be downloaded
here): it locates the procedural faces' landmarks in generated images, for the drag
quality benchmark, and its penultimate layer is the feature space of our procedural FID.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

logger = logging.getLogger(__name__)

INPUT_SIZE = 64
FEATURE_DIM = 256


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class LandmarkNet(nn.Module):
    """64 x 64 RGB -> ``K`` landmarks ``(x, y)`` in [0, 1] of the image side, and features.

    Two heads read the same convolutional body. The global one regresses every landmark
    from the ``FEATURE_DIM`` embedding (the procedural-FID feature space, which it trains);
    the heatmap one scores each 2-px cell of a 32 x 32 grid per landmark, and the expected
    position under the softmax of those scores (a soft-argmax) is the landmark. A fully
    connected layer has to learn every position separately; a convolution finds a mouth
    corner the same way wherever it is, which halves the error on held-out renders.

    Args:
        num_landmarks: ``K``, the renderer's landmark count.
        heatmap: locate with the heatmap head (files written before it existed have none).
    """

    def __init__(self, num_landmarks: int, heatmap: bool = True) -> None:
        super().__init__()
        self.num_landmarks = num_landmarks
        self.body = nn.Sequential(_block(3, 32), _block(32, 64), _block(64, 128), _block(128, 128))
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(128 * 4 * 4, FEATURE_DIM), nn.ReLU())
        self.head = nn.Linear(FEATURE_DIM, num_landmarks * 2)
        self.heat = _heatmap_head(32 + 64 + 128, num_landmarks) if heatmap else None

    @staticmethod
    def prepare(images: Union[np.ndarray, Tensor]) -> Tensor:
        """uint8 ``[N, H, W, 3]`` (or float ``[N, 3, H, W]`` in [-1, 1]) -> network input."""
        x = torch.as_tensor(images)
        if x.dtype == torch.uint8:
            x = x.permute(0, 3, 1, 2).float() / 127.5 - 1
        if x.shape[-1] != INPUT_SIZE:
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="area")
        return x

    def features(self, x: Tensor) -> Tensor:
        """``[N, FEATURE_DIM]`` embedding (the procedural-FID feature space)."""
        return self.embed(self.body(x))

    def both(self, x: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        """The global head's and the heatmap head's landmarks ``[N, K, 2]`` (None without one)."""
        maps = []
        for block in self.body:
            x = block(x)
            maps.append(x)
        coarse = self.head(self.embed(x)).reshape(-1, self.num_landmarks, 2)
        if self.heat is None:
            return coarse, None
        side = maps[0].shape[-1]
        fine = [maps[0]] + [F.interpolate(m, size=side, mode="bilinear") for m in maps[1:3]]
        return coarse, soft_argmax(self.heat(torch.cat(fine, dim=1)))

    def forward(self, x: Tensor) -> Tensor:
        """``[N, K, 2]`` landmark positions as fractions of the image side."""
        coarse, fine = self.both(x)
        return coarse if fine is None else fine

    @torch.no_grad()
    def locate(self, images: Union[np.ndarray, Tensor], size: int) -> np.ndarray:
        """Landmarks of images, ``[N, K, 2]`` in pixels of a ``size`` image."""
        self.eval()
        return (self(self.prepare(images)) * size).numpy()

    @torch.no_grad()
    def embed_images(self, images: Union[np.ndarray, Tensor], batch: int = 256) -> np.ndarray:
        """Features of many images, ``[N, FEATURE_DIM]`` float64."""
        self.eval()
        out = [
            self.features(self.prepare(images[i : i + batch])) for i in range(0, len(images), batch)
        ]
        return torch.cat(out).double().numpy()


def _heatmap_head(cin: int, num_landmarks: int) -> nn.Sequential:
    """Per-landmark scores of each cell: a 1x1 squeeze, one 3x3 layer, a 1x1 score."""
    return nn.Sequential(
        nn.Conv2d(cin, 64, 1),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.Conv2d(64, 64, 3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.Conv2d(64, num_landmarks, 1),
    )


def soft_argmax(scores: Tensor) -> Tensor:
    """``[N, K, S, S]`` scores -> ``[N, K, 2]`` expected ``(x, y)`` of cell centres, in [0, 1].

    Differentiable and sub-cell: the position is a softmax-weighted mean, not the best cell.
    """
    n, k, h, w = scores.shape
    prob = scores.flatten(2).softmax(dim=-1).reshape(n, k, h, w)
    xs = (torch.arange(w, dtype=prob.dtype, device=prob.device) + 0.5) / w
    ys = (torch.arange(h, dtype=prob.dtype, device=prob.device) + 0.5) / h
    return torch.stack([(prob.sum(2) * xs).sum(-1), (prob.sum(3) * ys).sum(-1)], dim=-1)


def train_landmark_net(
    images: np.ndarray,
    landmarks: np.ndarray,
    *,
    steps: int = 3000,
    batch: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
) -> LandmarkNet:
    """Fit a `LandmarkNet` to rendered faces.

    Args:
        images: uint8 ``[N, H, W, 3]`` rendered faces.
        landmarks: ``[N, K, 2]`` their landmarks in pixels.
        steps: optimiser steps.
        seed: seeds the initialisation and the batch order.

    Returns:
        The trained network, in eval mode.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    size = images.shape[1]
    x_all = LandmarkNet.prepare(images)
    y_all = torch.as_tensor(landmarks, dtype=torch.float32) / size
    net = LandmarkNet(landmarks.shape[1])
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    net.train()
    for step in range(steps):
        idx = torch.randint(len(x_all), (batch,), generator=gen)
        x = x_all[idx] + 0.03 * torch.randn(x_all[idx].shape, generator=gen)  # generator noise
        loss = sum(
            F.smooth_l1_loss(out, y_all[idx], beta=0.01) for out in net.both(x) if out is not None
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 500 == 0:
            logger.info("landmark net step %d loss %.5f", step, loss.item())
    return net.eval()


def save_landmark_net(
    net: LandmarkNet, path: Union[str, Path], metadata: Optional[dict[str, str]] = None
) -> None:
    """Write the network as safetensors: its shape, and any extra ``metadata``, in the header."""
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    meta = {"num_landmarks": str(net.num_landmarks), "heatmap": str(int(net.heat is not None))}
    save_file(state, str(path), metadata=meta | (metadata or {}))


def load_landmark_net(path: Union[str, Path]) -> LandmarkNet:
    """Read a network written by `save_landmark_net`."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    net = LandmarkNet(int(meta["num_landmarks"]), heatmap=meta.get("heatmap", "0") == "1")
    net.load_state_dict(load_file(str(path)))
    return net.eval()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``[N, D]`` (as in FID).

    ``Tr(sqrt(S_a S_b))`` is computed from the eigenvalues of ``sqrt(S_a) S_b sqrt(S_a)``,
    which is symmetric, so no general matrix square root (and no scipy) is needed.
    """
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    vals, vecs = np.linalg.eigh(cov_a)
    sqrt_a = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    cross = np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a)
    tr_sqrt = np.sqrt(np.clip(cross, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_sqrt)
