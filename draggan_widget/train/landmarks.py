"""A small landmark CNN trained on rendered faces: the eyes of our benchmarks.

It does two jobs that pretrained ImageNet networks do elsewhere (none can be downloaded
here): it locates the procedural faces' landmarks in generated images, for the drag
quality benchmark, and its penultimate layer is the feature space of our procedural FID.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Union

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

    Args:
        num_landmarks: ``K``, the renderer's landmark count.
    """

    def __init__(self, num_landmarks: int) -> None:
        super().__init__()
        self.num_landmarks = num_landmarks
        self.body = nn.Sequential(_block(3, 32), _block(32, 64), _block(64, 128), _block(128, 128))
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(128 * 4 * 4, FEATURE_DIM), nn.ReLU())
        self.head = nn.Linear(FEATURE_DIM, num_landmarks * 2)

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

    def forward(self, x: Tensor) -> Tensor:
        """``[N, K, 2]`` landmark positions as fractions of the image side."""
        return self.head(self.features(x)).reshape(-1, self.num_landmarks, 2)

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
        loss = F.smooth_l1_loss(net(x), y_all[idx], beta=0.01)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 500 == 0:
            logger.info("landmark net step %d loss %.5f", step, loss.item())
    return net.eval()


def save_landmark_net(net: LandmarkNet, path: Union[str, Path]) -> None:
    """Write the network as safetensors (landmark count in the metadata)."""
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata={"num_landmarks": str(net.num_landmarks)})


def load_landmark_net(path: Union[str, Path]) -> LandmarkNet:
    """Read a network written by `save_landmark_net`."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        k = int((f.metadata() or {})["num_landmarks"])
    net = LandmarkNet(k)
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
