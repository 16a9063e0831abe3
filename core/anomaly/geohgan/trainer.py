"""Geo-Hgan's two training steps, as published, with the published code's defects fixed.

Step 1, per batch (Adam 2e-4, betas 0.5/0.999):

1. autoencoder step on the reconstruction error of valid cells;
2. ``latent_d_steps`` (5) latent-discriminator steps, then one latent-generator
   step (least-squares GAN on autoencoder codes vs generated codes);
3. a critic step on ``-D(x) + D(G(l_G(n))) + 1e-3 D(AE(x)) + 10 GP``;
4. an image-generator step on ``-D(G(l_G(n)))`` every ``n_critic``-th batch.

Step 2 (f-AnoGAN "izi_f"): G and the critic frozen, the encoder E initialised
from the autoencoder's encoder and trained (Adam 1e-4) on
``MSE(G(E(x)), x) + kappa MSE(f(G(E(x))), f(x))``.

Fixed here: the gradient penalty draws one interpolation weight per *tile*
(the published code drew one per channel); nodata cells are masked out of
every loss, and generated tiles get the real batch's nodata pattern so the
critic cannot tell real from fake by the survey's edge; every random draw
comes from the seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from core.anomaly.geohgan.dataset import TileDataset
from core.anomaly.geohgan.model import GeoHganNetworks
from core.anomaly.geohgan.scoring import masked_mse, with_nodata_from

ADAM_BETAS = (0.5, 0.999)


@dataclass
class TrainingSchedule:
    """Optimiser settings of the two steps (published values by default)."""

    epochs: int = 15
    encoder_epochs: int = 15
    batch: int = 64
    lr: float = 2e-4
    encoder_lr: float = 1e-4
    latent_d_steps: int = 5
    n_critic: int = 5
    gp_weight: float = 10.0
    reconstruction_fake_weight: float = 1e-3
    kappa: float = 1.0
    warmup_epochs: int = 3
    tiles_per_epoch: int | None = 8192


@dataclass
class TrainingHistory:
    """Mean losses per epoch, for the run record."""

    step1: list[dict[str, float]] = field(default_factory=list)
    step2: list[dict[str, float]] = field(default_factory=list)


def gradient_penalty(critic: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP penalty with one interpolation weight per tile (shape (n, 1, 1, 1))."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    mixed = (alpha * real + (1.0 - alpha) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def _epoch_batches(n: int, batch: int, tiles_per_epoch: int | None, rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of one epoch: ``tiles_per_epoch`` draws without repeats until every tile has come once.

    A large raster gives a random subset of its tiles each epoch, a small one
    passes over all its tiles several times, so an epoch costs the same on a
    100 x 100 grid as on a 2000 x 2000 one (None: one pass over every tile).
    """
    wanted = n if tiles_per_epoch is None else tiles_per_epoch
    passes = [rng.permutation(n) for _ in range(-(-wanted // n))]
    order = np.concatenate(passes)[:wanted]
    return [order[i:i + batch] for i in range(0, len(order), batch)]


def _report_batch(on_batch: Callable[[float], None] | None, epoch: int, batch: int, batches: int) -> None:
    """Progress within an epoch: epochs done as a fraction (an epoch of 8192 tiles can take a minute on a CPU)."""
    if on_batch is not None:
        on_batch(epoch + batch / max(batches, 1))


def _adam(module: torch.nn.Module, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(module.parameters(), lr=lr, betas=ADAM_BETAS)


def _step(optimiser: torch.optim.Optimizer, loss: torch.Tensor) -> float:
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return float(loss.detach())


def train_step1(nets: GeoHganNetworks, data: TileDataset, schedule: TrainingSchedule, latent: int,
                device: torch.device, rng: np.random.Generator,
                on_epoch: Callable[[int, dict[str, float]], None] | None = None,
                on_batch: Callable[[float], None] | None = None) -> list[dict[str, float]]:
    """Autoencoder, latent GAN and WGAN-GP sample GAN together (step 1)."""
    ae, lg, ld, gen, critic = nets.autoencoder, nets.latent_generator, nets.latent_discriminator, nets.generator, nets.critic
    opt = {name: _adam(m, schedule.lr) for name, m in
           (("ae", ae), ("lg", lg), ("ld", ld), ("gen", gen), ("critic", critic))}
    for module in (ae, lg, ld, gen, critic):
        module.train()
    history = []
    # Warm start (not in the published code): a few autoencoder-only epochs, then
    # the image generator starts from the autoencoder's decoder. Fed codes from the
    # latent generator (which learns the distribution of autoencoder codes), it
    # makes realistic tiles from the first adversarial step; from random weights it
    # needs far more generator steps than a CPU budget allows (1 in n_critic batches).
    for epoch in range(schedule.warmup_epochs):
        total = 0.0
        batches = _epoch_batches(len(data), schedule.batch, schedule.tiles_per_epoch, rng)
        for j, index in enumerate(batches):
            tiles, masks = (t.to(device) for t in data.batch(index))
            total += _step(opt["ae"], masked_mse(ae(tiles), tiles, masks).mean())
            _report_batch(on_batch, epoch, j, len(batches))
        history.append({"autoencoder_warmup": total / max(len(batches), 1)})
        if on_epoch is not None:
            on_epoch(epoch, history[-1])
    if schedule.warmup_epochs > 0:
        gen.load_state_dict(ae.decoder.state_dict())
    batches_done = 0  # counted across epochs so small rasters (few batches an epoch) still train G
    for epoch in range(schedule.epochs):
        sums = {"autoencoder": 0.0, "latent_discriminator": 0.0, "latent_generator": 0.0, "critic": 0.0,
                "generator": 0.0}
        batches = _epoch_batches(len(data), schedule.batch, schedule.tiles_per_epoch, rng)
        g_steps = 0
        for j, index in enumerate(batches):
            _report_batch(on_batch, schedule.warmup_epochs + epoch, j, len(batches))
            tiles, masks = (t.to(device) for t in data.batch(index))
            n = tiles.shape[0]
            sums["autoencoder"] += _step(opt["ae"], masked_mse(ae(tiles), tiles, masks).mean())

            with torch.no_grad():
                real_codes = ae.encoder(tiles)
            for _ in range(schedule.latent_d_steps):
                with torch.no_grad():
                    fake_codes = lg(torch.randn(n, latent, device=device))
                loss = 0.5 * ((ld(real_codes) - 1.0) ** 2).mean() + 0.5 * (ld(fake_codes) ** 2).mean()
                sums["latent_discriminator"] += _step(opt["ld"], loss) / schedule.latent_d_steps
            ld.requires_grad_(False)
            loss = 0.5 * ((ld(lg(torch.randn(n, latent, device=device))) - 1.0) ** 2).mean()
            sums["latent_generator"] += _step(opt["lg"], loss)
            ld.requires_grad_(True)

            with torch.no_grad():
                fake = with_nodata_from(gen(lg(torch.randn(n, latent, device=device))), tiles, masks)
                reconstructed = with_nodata_from(ae(tiles), tiles, masks)
            loss = (-critic(tiles).mean() + critic(fake).mean()
                    + schedule.reconstruction_fake_weight * critic(reconstructed).mean()
                    + schedule.gp_weight * gradient_penalty(critic, tiles, fake))
            sums["critic"] += _step(opt["critic"], loss)

            batches_done += 1
            if batches_done % schedule.n_critic == 0:
                critic.requires_grad_(False)
                with torch.no_grad():
                    codes = lg(torch.randn(n, latent, device=device))
                loss = -critic(with_nodata_from(gen(codes), tiles, masks)).mean()
                sums["generator"] += _step(opt["gen"], loss)
                critic.requires_grad_(True)
                g_steps += 1
        means = {k: v / max(len(batches), 1) for k, v in sums.items()}
        means["generator"] = sums["generator"] / max(g_steps, 1)
        history.append(means)
        if on_epoch is not None:
            on_epoch(schedule.warmup_epochs + epoch, means)
    return history


def train_step1_epochs(schedule: TrainingSchedule) -> int:
    """Epochs of step 1 including the autoencoder warm-up (for progress fractions)."""
    return schedule.warmup_epochs + schedule.epochs


def train_step2(nets: GeoHganNetworks, data: TileDataset, schedule: TrainingSchedule, device: torch.device,
                rng: np.random.Generator,
                on_epoch: Callable[[int, dict[str, float]], None] | None = None,
                on_batch: Callable[[float], None] | None = None) -> list[dict[str, float]]:
    """GAN-guided encoder (step 2): G and the critic frozen and in eval mode."""
    gen, critic, encoder = nets.generator, nets.critic, nets.encoder
    encoder.load_state_dict(nets.autoencoder.encoder.state_dict())
    for module in (gen, critic):
        module.eval()
        module.requires_grad_(False)
    encoder.train()
    opt = _adam(encoder, schedule.encoder_lr)
    history = []
    for epoch in range(schedule.encoder_epochs):
        total = 0.0
        batches = _epoch_batches(len(data), schedule.batch, schedule.tiles_per_epoch, rng)
        for j, index in enumerate(batches):
            _report_batch(on_batch, epoch, j, len(batches))
            tiles, masks = (t.to(device) for t in data.batch(index))
            reconstruction = with_nodata_from(gen(encoder(tiles)), tiles, masks)
            with torch.no_grad():
                real_features = critic.features(tiles)
            loss = (masked_mse(reconstruction, tiles, masks).mean()
                    + schedule.kappa * ((critic.features(reconstruction) - real_features) ** 2).mean())
            total += _step(opt, loss)
        means = {"encoder": total / max(len(batches), 1)}
        history.append(means)
        if on_epoch is not None:
            on_epoch(epoch, means)
    for module in (gen, critic):
        module.requires_grad_(True)
    return history
