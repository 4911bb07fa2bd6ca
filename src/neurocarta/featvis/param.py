"""The image being optimised: a Fourier spectrum in a decorrelated colour space.

Optimising pixels directly fills an image with high-frequency noise that excites a unit
without looking like anything (Olah et al., "Feature Visualization", Distill 2017). Lucid's
answer, used here: the parameters are the image's 2-D Fourier coefficients scaled by
1/frequency (so every frequency starts with the same energy as natural images' 1/f spectrum
and steps move coarse structure as readily as fine), in a colour space whose three axes are
decorrelated (the square root of natural images' colour covariance), squashed into [0, 1] by
a sigmoid. Many images (one per target and diversity copy) are one batch of parameters.
"""

from __future__ import annotations

import torch

# Square root of the colour covariance of natural (ImageNet) images, as Lucid measured it: a
# step along one parameter axis moves the colour along a principal axis of real photographs.
COLOUR_CORRELATION_SQRT = torch.tensor([[0.26, 0.09, 0.02],
                                        [0.27, 0.00, -0.05],
                                        [0.27, -0.09, 0.03]])


class FourierImage(torch.nn.Module):
    """``batch`` RGB images of ``size`` x ``size`` pixels in [0, 1], parameterised as above.

    ``decay``: the spectrum's scaling exponent (1: 1/f). ``sd``: the initial coefficients'
    standard deviation (small, so every image starts near uniform grey). ``generator``
    seeds the start, so the same seed draws the same images.
    """

    def __init__(self, batch: int, size: int, decay: float = 1.0, sd: float = 0.01,
                 generator: torch.Generator | None = None, device: torch.device | str = "cpu"):
        super().__init__()
        self.size = int(size)
        fy = torch.fft.fftfreq(self.size)[:, None]
        fx = torch.fft.rfftfreq(self.size)[None, :]
        freqs = torch.sqrt(fx * fx + fy * fy)
        # / 4: Lucid's constant, which keeps the start's pixel spread small before the sigmoid
        scale = 1.0 / torch.clamp(freqs, min=1.0 / self.size) ** decay / 4.0
        self.register_buffer("scale", scale.to(device))
        shape = (batch, 3, self.size, self.size // 2 + 1, 2)
        self.spectrum = torch.nn.Parameter((torch.randn(shape, generator=generator) * sd).to(device))
        colour = COLOUR_CORRELATION_SQRT / COLOUR_CORRELATION_SQRT.norm(dim=0).max()
        self.register_buffer("colour", colour.to(device))

    def forward(self) -> torch.Tensor:
        """The images, (batch, 3, size, size) in [0, 1]."""
        coeffs = torch.view_as_complex(self.spectrum) * self.scale
        # orthonormal inverse FFT: the pixel scale does not depend on the image size
        decorrelated = torch.fft.irfft2(coeffs, s=(self.size, self.size), norm="ortho")
        rgb = torch.nn.functional.conv2d(decorrelated, self.colour[:, :, None, None])  # a 1x1 colour mix
        return torch.sigmoid(rgb)


def to_uint8(images: torch.Tensor) -> "torch.Tensor":
    """(batch, 3, h, w) in [0, 1] -> (batch, h, w, 3) uint8, as stored and shown."""
    return (images.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()


def from_uint8(images: "torch.Tensor", device: torch.device | str = "cpu") -> torch.Tensor:
    """The inverse of :func:`to_uint8`: what the model sees of a stored image."""
    return images.to(device).permute(0, 3, 1, 2).float() / 255.0

