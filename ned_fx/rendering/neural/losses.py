"""The neural renderer's losses: reconstruction (L1, Laplacian pyramid, SSIM), perceptual, adversarial.

**Why this perceptual loss.** NED, Deep Video Portraits and most face renderers use VGG or LPIPS features,
whose weights are downloaded from the internet at run time; ned_fx never downloads weights. The network we
*are* allowed to have, and the one that matters for faces, is our own port of MediaPipe's face-mesh network
(its weights come from the mediapipe wheel that ``ned-fx weights install`` converts): it was trained to read
face geometry -- lid and lip contours, creases, the mouth's inner outline -- from pixels, so its intermediate
activations respond to exactly the structures an expression edit must get right, and a generator whose output
activates it like the real frame does draws those structures where the real face has them.
:class:`FeatureTap` taps a few of its layers (one per resolution, found by a dry run, so any convolutional
network works) and :class:`PerceptualLoss` compares them, each layer normalised by the target's mean
activation. The stage does not import the tracker: the caller passes the network in
(``ned-fx train-renderer`` passes the face-mesh ``GraphNet``). A frozen face-landmark net cannot judge colour
and texture statistics the way VGG does, so the pixel losses carry that: L1, a 5-level Laplacian-pyramid L1
(fine detail and low frequencies weigh the same) and SSIM (local contrast and structure).

**Adversarial.** NED's mouth discriminator: a conditional patch discriminator that only sees the mouth crop
(where a regression loss blurs teeth most), least-squares GAN loss, spectral normalisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def masked_l1(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute difference, over the mask's pixels when given (mask Bx1xHxW, 0..1)."""
    diff = (output - target).abs()
    if mask is None:
        return diff.mean()
    return (diff * mask).sum() / (mask.sum() * output.shape[1]).clamp_min(1.0)


def laplacian_pyramid_l1(output: torch.Tensor, target: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """L1 between the Laplacian pyramids of two images (band-pass levels and the low-pass residual), the
    levels weighed equally. The pyramid is linear, so it is built once, of the difference."""
    d = output - target
    loss = output.new_zeros(())
    n = 0
    for _ in range(levels - 1):
        if min(d.shape[-2:]) < 4:
            break
        low = F.avg_pool2d(d, 2, ceil_mode=True)
        loss = loss + (d - F.interpolate(low, size=d.shape[-2:], mode="bilinear", align_corners=False)).abs().mean()
        d = low
        n += 1
    return (loss + d.abs().mean()) / (n + 1)


def ssim(output: torch.Tensor, target: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Mean structural similarity (separable box window, the usual constants for a 0..1 range)."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    pad = window // 2
    n = output.shape[1]
    stack = torch.cat([output, target, output * output, target * target, output * target], dim=1)
    stack = F.pad(stack, (pad, pad, pad, pad), mode="replicate")
    c = stack.shape[1]
    box = torch.full((c, 1, 1, window), 1.0 / window, dtype=stack.dtype, device=stack.device)
    # a separable depthwise convolution: several times faster than avg_pool2d with stride 1 on CPUs
    stack = F.conv2d(F.conv2d(stack, box, groups=c), box.transpose(2, 3), groups=c)
    mu_a, mu_b, aa, bb, ab = torch.split(stack, n, dim=1)
    var_a, var_b, cov = aa - mu_a * mu_a, bb - mu_b * mu_b, ab - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2))
    return s.mean()


class _Stop(Exception):
    pass


class FeatureTap(nn.Module):
    """Intermediate activations of a frozen convolutional network (forward hooks; never trained).

    At construction a dry run at ``input_size`` records the output shape of every Conv2d/PReLU in execution
    order; for each spatial resolution the last layer producing it is a candidate, and the ``taps`` finest
    resolutions (the stem excluded) are kept. The network stops right after the deepest tap.

    Args:
        net: the network (called as ``net(images)``, images Bx3xHxW in ``0..1``); it is set to eval mode and
            frozen.
        input_size: the side its input is resized to.
        taps: how many layers to tap.
    """

    def __init__(self, net: nn.Module, input_size: int = 192, taps: int = 4):
        super().__init__()
        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.input_size = int(input_size)
        candidates = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.PReLU))]
        seen: list[tuple[nn.Module, tuple[int, int]]] = []
        hooks = [m.register_forward_hook(lambda mod, _i, out: seen.append((mod, tuple(out.shape[-2:]))))
                 for m in candidates]
        try:
            with torch.no_grad():
                device = next(net.parameters()).device
                self._run(torch.zeros(1, 3, self.input_size, self.input_size, device=device), dry=True)
        finally:
            for h in hooks:
                h.remove()
        last: dict[tuple[int, int], nn.Module] = {}
        order: list[tuple[int, int]] = []
        for mod, hw in seen:
            if hw not in last:
                order.append(hw)
            last[hw] = mod
        order = order[1:] if len(order) > 1 else order               # the stem's resolution is just pixels
        self.layers = [last[hw] for hw in order[:taps]]
        self.resolutions = order[:taps]
        if not self.layers:
            raise ValueError("the feature network has no convolution to tap")

    def _run(self, images: torch.Tensor, dry: bool = False) -> None:
        try:
            self.net(images)
        except _Stop:
            pass
        except RuntimeError:
            # in the dry run, a head that only fits the network's native input size (a reshape) may fail
            # after the convolutions; the layers seen so far are the candidates
            if not dry:
                raise

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Bx3xHxW images in 0..1 -> the tapped activations (finest first)."""
        if images.shape[-1] != self.input_size or images.shape[-2] != self.input_size:
            images = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear",
                                   align_corners=False)
        found: dict[nn.Module, torch.Tensor] = {}
        deepest = self.layers[-1]

        def keep(mod, _inputs, out):
            found[mod] = out
            if mod is deepest:
                raise _Stop

        hooks = [m.register_forward_hook(keep) for m in self.layers]
        try:
            self._run(images)
        finally:
            for h in hooks:
                h.remove()
        if len(found) != len(self.layers):
            raise RuntimeError("the feature network did not reach every tapped layer")
        return [found[m] for m in self.layers]


class PerceptualLoss(nn.Module):
    """L1 between a :class:`FeatureTap`'s activations of output and target, each layer divided by the target's
    mean absolute activation (so every layer weighs about the same)."""

    def __init__(self, tap: FeatureTap):
        super().__init__()
        self.tap = tap

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            ref = self.tap(target.clamp(0.0, 1.0))
        got = self.tap(output.clamp(0.0, 1.0))
        loss = output.new_zeros(())
        for g, r in zip(got, ref):
            loss = loss + (g - r).abs().mean() / r.abs().mean().clamp_min(1e-6)
        return loss / len(got)


def gan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's least-squares GAN loss: real patches toward 1, generated ones toward 0."""
    return 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake ** 2).mean()


def gan_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """The generator's least-squares GAN loss on the discriminator's outputs for its images (bounded
    gradients: a confident discriminator cannot blow the generator's update up)."""
    return 0.5 * ((fake - 1.0) ** 2).mean()
