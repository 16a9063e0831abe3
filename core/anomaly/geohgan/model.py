"""Geo-Hgan's networks as plain ``nn.Module``s (no I/O, no training logic).

Published: fully connected networks on 10 x 10 tiles upsampled to 64 x 64
(about 164 M parameters per autoencoder half for 39 bands). Here every network
works on the native tile (default 8 x 8 cells) and is convolutional, so the
size grows with the number of bands only in the first and last layers:

- :class:`TileEncoder` - the autoencoder's encoder and, in step 2, the
  GAN-guided encoder E (initialised from it);
- :class:`TileDecoder` - the autoencoder's decoder and the image generator G
  (DCGAN-style: linear to a small feature map, upsample + conv stages, tanh);
- :class:`LatentGenerator` / :class:`LatentDiscriminator` - the latent space
  learning module (an LSGAN on latent codes);
- :class:`Critic` - the WGAN-GP critic: spectral-normalised convolutions
  (48 -> 64 -> 96 -> 128 channels, stride 2 while the map is larger than
  2 x 2), a CBAM block added residually, a linear output; its penultimate
  features serve feature matching.

Every reconstructing output ends in ``tanh``, matching the [-1, 1] range of
:mod:`core.anomaly.geohgan.normalise`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

CRITIC_CHANNELS = (48, 64, 96, 128)


def feature_map_sizes(tile: int) -> list[int]:
    """Spatial sizes from the tile down to 2 x 2 (or the tile itself when smaller), halving (ceil) each step."""
    sizes = [tile]
    while sizes[-1] > 2:
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


class TileEncoder(nn.Module):
    """(n, bands, tile, tile) -> (n, latent): a 3 x 3 conv at native size, then stride-2 convs down to 2 x 2."""

    def __init__(self, bands: int, tile: int, latent: int, width: int = 32) -> None:
        super().__init__()
        sizes = feature_map_sizes(tile)
        channels = [min(width * 2 ** i, 8 * width) for i in range(len(sizes))]
        layers: list[nn.Module] = [nn.Conv2d(bands, channels[0], 3, padding=1), _act()]
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), _act()]
        self.features = nn.Sequential(*layers)
        self.to_latent = nn.Linear(channels[-1] * sizes[-1] ** 2, latent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_latent(self.features(x).flatten(1))


class TileDecoder(nn.Module):
    """(n, latent) -> (n, bands, tile, tile) in [-1, 1]: linear to 2 x 2, upsample + conv stages, tanh."""

    def __init__(self, bands: int, tile: int, latent: int, width: int = 32) -> None:
        super().__init__()
        sizes = feature_map_sizes(tile)
        channels = [min(width * 2 ** i, 8 * width) for i in range(len(sizes))]
        self.start_shape = (channels[-1], sizes[-1], sizes[-1])
        self.from_latent = nn.Sequential(nn.Linear(latent, channels[-1] * sizes[-1] ** 2), _act())
        layers: list[nn.Module] = []
        for i in range(len(sizes) - 1, 0, -1):
            layers += [nn.Upsample(size=(sizes[i - 1], sizes[i - 1]), mode="nearest"),
                       nn.Conv2d(channels[i], channels[i - 1], 3, padding=1), _act()]
        layers += [nn.Conv2d(channels[0], bands, 3, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.from_latent(z).view(-1, *self.start_shape))


class Autoencoder(nn.Module):
    """Encoder + decoder; ``forward`` returns the reconstruction."""

    def __init__(self, bands: int, tile: int, latent: int, width: int = 32) -> None:
        super().__init__()
        self.encoder = TileEncoder(bands, tile, latent, width)
        self.decoder = TileDecoder(bands, tile, latent, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(_act())
    return nn.Sequential(*layers)


class LatentGenerator(nn.Module):
    """Gaussian noise (latent) -> a latent code: hidden h -> 2h -> h (published 512-1024-512 for latent 100)."""

    def __init__(self, latent: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = _mlp([latent, hidden, 2 * hidden, hidden, latent])

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.net(noise)


class LatentDiscriminator(nn.Module):
    """Latent code -> one least-squares GAN output (real autoencoder code vs generated code)."""

    def __init__(self, latent: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = _mlp([latent, hidden, 2 * hidden, hidden, 1])

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.net(code)


class CBAM(nn.Module):
    """Convolutional block attention (Woo et al. 2018): channel attention, then spatial attention."""

    def __init__(self, channels: int, reduction: int = 8, spatial_kernel: int = 7) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.channel_mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))
        self.spatial = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel = torch.sigmoid(self.channel_mlp(x.mean(dim=(2, 3))) + self.channel_mlp(x.amax(dim=(2, 3))))
        x = x * channel[:, :, None, None]
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class Critic(nn.Module):
    """WGAN-GP critic with spectral-normalised convolutions and a residual CBAM block.

    ``forward`` returns the critic value (n, 1); ``features`` the penultimate
    features (n, d) used for feature matching in step 2 and in the scores.
    """

    def __init__(self, bands: int, tile: int, channels: tuple[int, ...] = CRITIC_CHANNELS) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size, c_in = tile, bands
        for c_out in channels:
            stride = 2 if size > 2 else 1
            layers += [spectral_norm(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)), _act()]
            size = (size + 1) // 2 if stride == 2 else size
            c_in = c_out
        self.body = nn.Sequential(*layers)
        kernel = min(7, size if size % 2 else size + 1)
        self.attention = CBAM(c_in, spatial_kernel=kernel)
        self.feature_size = c_in * size * size
        self.head = spectral_norm(nn.Linear(self.feature_size, 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return (h + self.attention(h)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class GeoHganNetworks(nn.Module):
    """All networks of one model, so that one ``state_dict`` saves them together."""

    def __init__(self, bands: int, tile: int, latent: int, width: int = 32, latent_hidden: int = 128) -> None:
        super().__init__()
        self.autoencoder = Autoencoder(bands, tile, latent, width)
        self.latent_generator = LatentGenerator(latent, latent_hidden)
        self.latent_discriminator = LatentDiscriminator(latent, latent_hidden)
        self.generator = TileDecoder(bands, tile, latent, width)
        self.critic = Critic(bands, tile)
        self.encoder = TileEncoder(bands, tile, latent, width)
