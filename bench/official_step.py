"""A faithful re-implementation of the official DragGAN step, the baseline of drag_speed.py.

It does what the official release does each step, on our generator: the whole synthesis
with autograd (image included), the feature map bilinearly upsampled to image resolution,
then a Python loop per handle for tracking (with a host sync per point) and for motion
supervision (a distance map over every image pixel, then ``torch.where``). Written from
the paper and the release's behaviour; no code of theirs is copied.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from draggan_widget.gan.stylegan2 import Generator


class OfficialStep:
    """The official loop's state and step, for timing against `DragSession.step`."""

    def __init__(
        self,
        G: Generator,
        ws: torch.Tensor,
        handles,
        targets,
        *,
        feature_res: int,
        lr: float = 2e-3,
        r1: float = 3,
        r2: float = 12,
        n_opt: int = 6,
    ) -> None:
        self.G, self.feature_res = G, feature_res
        self.h = self.w = G.img_resolution
        self.points = [[int(round(y)), int(round(x))] for x, y in handles]  # (row, col)
        self.targets = [[int(round(y)), int(round(x))] for x, y in targets]
        self.w0 = ws.detach().clone()
        self.w_opt = ws[:, :n_opt].detach().clone().requires_grad_(True)
        self.optimizer = torch.optim.Adam([self.w_opt], lr=lr)
        self.r1, self.r2 = r1, r2
        self.n_opt = n_opt
        self.feat_refs = None
        self.feat0 = None

    def _forward(self):
        ws = torch.cat([self.w_opt, self.w0[:, self.n_opt :]], dim=1)
        kw = {"force_fp32": True, "fused_modconv": True}  # NVIDIA's eval-mode convolution
        state = self.G.synthesis.begin(ws, until_res=self.feature_res, **kw)
        img = self.G.synthesis.finish(ws, state, **kw)  # with autograd, as released
        return img, state.x

    def step(self, mask: torch.Tensor | None = None, lambda_mask: float = 20.0) -> float:
        img, feat = self._forward()
        h, w = self.h, self.w
        feat_resize = F.interpolate(feat, [h, w], mode="bilinear")
        if self.feat_refs is None:
            self.feat0 = feat_resize.detach()
            self.feat_refs = [self.feat0[:, :, py, px] for py, px in self.points]
        with torch.no_grad():  # tracking: one patch and one host sync per point
            for j, (py, px) in enumerate(self.points):
                r = max(round(self.r2 / 512 * h), 1)
                up, down = max(py - r, 0), min(py + r + 1, h)
                left, right = max(px - r, 0), min(px + r + 1, w)
                patch = feat_resize[:, :, up:down, left:right]
                dist = torch.linalg.norm(patch - self.feat_refs[j].reshape(1, -1, 1, 1), dim=1)
                idx = int(torch.argmin(dist.view(1, -1), -1).item())
                width = right - left
                self.points[j] = [idx // width + up, idx % width + left]
        dev = feat.device  # the distance maps and grids live where the features do (CUDA)
        yy, xx = torch.meshgrid(
            torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij"
        )
        loss = torch.zeros((), device=dev)
        for j, (py, px) in enumerate(self.points):  # supervision: full-image distance map per point
            ty, tx = self.targets[j]
            direction = torch.tensor([tx - px, ty - py], dtype=torch.float32, device=dev)
            if torch.linalg.norm(direction) > 1:
                distance = ((xx - px) ** 2 + (yy - py) ** 2) ** 0.5
                rel_i, rel_j = torch.where(distance < max(round(self.r1 / 512 * h), 1))
                direction = direction / (torch.linalg.norm(direction) + 1e-7)
                gh = (rel_i + direction[1]) / (h - 1) * 2 - 1
                gw = (rel_j + direction[0]) / (w - 1) * 2 - 1
                grid = torch.stack([gw, gh], dim=-1)[None, None]
                shifted = F.grid_sample(feat_resize, grid, align_corners=True).squeeze(2)
                loss = loss + F.l1_loss(feat_resize[:, :, rel_i, rel_j].detach(), shifted)
        if mask is not None:
            m = mask[None, None].float()
            loss = loss + lambda_mask * F.l1_loss(feat_resize * m, self.feat0 * m)
        if not loss.requires_grad:  # every handle within 1 px: the release stops here
            return 0.0
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())
