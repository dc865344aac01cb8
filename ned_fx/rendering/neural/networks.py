"""The neural renderer's networks: the generator (a U-Net over conditioning images + the plate) and the mouth
discriminator (NED's second, mouth-only discriminator: a conditional patch discriminator on the mouth crop).

Channel layout of the generator's input (:func:`input_channels`), every map at the crop's resolution:

===========================  ========  ==============================================================================
what                         channels  meaning
===========================  ========  ==============================================================================
conditioning of frame t      7         :data:`~ned_fx.rendering.neural.conditioning.MAP_NAMES`: NMFC (3), face
                                       coverage, eye openings, visible iris, mouth opening
conditioning of t-1, t-2     7 each    the same for the previous frames' target landmarks, placed in frame t's crop
                                       (``temporal_frames`` of them: 0, 1 or 2)
image                        3         the plate's face crop in working space: the geometry-warped face (refine) or
                                       the source with the face area zeroed (replace)
known                        1         1 where ``image`` holds real pixels, 0 where the face was masked
===========================  ========  ==============================================================================

Output: ``image + residual`` (Bx3xSxS): the network paints the difference to its image input -- the whole
face where the input was masked, corrections where it holds the geometry renderer's warp, nothing elsewhere.
An untrained generator passes its input through; a residual never saturates (an alpha-blend head can: its
sigmoid, once closed, stops every gradient).
Everything is plain Conv2d / LeakyReLU / nearest upsampling: it runs on CPU and CUDA, traces, and exports to
ONNX (opset 18) with dynamic batch, height and width (multiples of ``2 ** (levels + 1)``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import NeuralRendererConfig

#: conditioning channels per frame (see :mod:`.conditioning`)
MAP_CHANNELS = 7


def input_channels(config: NeuralRendererConfig) -> int:
    """Channels of the generator's input for a config: conditioning of t and its previous frames, image, known."""
    return MAP_CHANNELS * (1 + config.temporal_frames) + 3 + 1


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection (the residual branch starts small)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = _act()
        nn.init.zeros_(self.conv2.bias)
        with torch.no_grad():
            self.conv2.weight.mul_(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class Generator(nn.Module):
    """U-Net generator: ``forward(inputs) -> image``.

    Args:
        config: the :class:`NeuralRendererConfig` (base_channels, levels, bottleneck_blocks, temporal_frames).

    Input ``inputs``: Bx(input_channels)xHxW as laid out in the module docstring (H, W multiples of
    ``2 ** (levels + 1)``). Output: Bx3xHxW in working space.
    """

    def __init__(self, config: NeuralRendererConfig):
        super().__init__()
        self.in_channels = input_channels(config)
        self.levels = config.levels
        base = config.base_channels
        ch = [min(base * 2 ** i, base * 8) for i in range(config.levels + 1)]
        # the full-resolution ends are a pixel (un)shuffle: every convolution runs at half resolution or less
        self.stem = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(4 * self.in_channels, ch[0], 3, padding=1), _act())
        self.down = nn.ModuleList()
        for i in range(config.levels):
            self.down.append(nn.Sequential(nn.Conv2d(ch[i], ch[i + 1], 3, stride=2, padding=1), _act(),
                                           ResBlock(ch[i + 1])))
        self.bottleneck = nn.Sequential(*[ResBlock(ch[-1]) for _ in range(config.bottleneck_blocks)])
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for i in reversed(range(config.levels)):
            self.up.append(nn.Sequential(nn.Conv2d(ch[i + 1], ch[i], 3, padding=1), _act()))
            self.fuse.append(nn.Sequential(nn.Conv2d(2 * ch[i], ch[i], 3, padding=1), _act()))
        self.head = nn.Conv2d(ch[0], 12, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        with torch.no_grad():                 # the residual starts small: an untrained generator passes its input
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        image = inputs[:, -4:-1]
        x = self.stem(inputs)
        skips = []
        for down in self.down:
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for up, fuse in zip(self.up, self.fuse):
            skip = skips.pop()
            x = up(F.interpolate(x, scale_factor=2.0, mode="nearest"))
            x = fuse(torch.cat([x, skip], dim=1))
        return image + self.shuffle(self.head(x))


class MouthDiscriminator(nn.Module):
    """Conditional patch discriminator on the mouth crop (NED's mouth discriminator).

    ``forward(mouth, condition) -> logits``: mouth Bx3xMxM (working space), condition Bx7xMxM (frame t's
    conditioning maps cropped the same way) -> Bx1xM/8xM/8 patch logits. Spectral-normalised convolutions.

    Args:
        config: the :class:`NeuralRendererConfig` (disc_channels).
    """

    def __init__(self, config: NeuralRendererConfig):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        c = config.disc_channels
        chans = [3 + MAP_CHANNELS, c, 2 * c, 4 * c]
        layers: list[nn.Module] = []
        for i in range(3):
            layers += [sn(nn.Conv2d(chans[i], chans[i + 1], 4, stride=2, padding=1)), _act()]
        layers += [sn(nn.Conv2d(chans[-1], chans[-1], 3, padding=1)), _act(), nn.Conv2d(chans[-1], 1, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, mouth: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([mouth * 2.0 - 1.0, condition], dim=1))
