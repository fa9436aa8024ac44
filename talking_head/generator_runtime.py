"""Where a personal generator's network runs: ONNX Runtime or torch (in bf16 autocast or float32).

The model class (``models.personal.PersonalGenerator``) only holds the networks and their math; this object
chooses, per device, what executes the network (``talking_head.device`` says what measured fastest), as
LivePortrait keeps the wrapper that calls the networks apart from what runs them. The composite at the
output's resolution is always torch's, in float32 (``PersonalGenerator.generate``).
"""

from __future__ import annotations

import torch

from talking_head.device import Precision, rendering_backend
from talking_head.device import precision as device_precision
from talking_head.models.personal import Painter, PersonalGenerator


class GeneratorRuntime:
    """Runs ``personal`` where ``talking_head.device`` says it is fastest on its device, unless ``backend``
    (``torch``/``onnx``) and ``precision`` (torch's) say otherwise: ONNX Runtime (``talking_head.onnx_backend``;
    the generator's weights must not change once it has rendered there) falling back to torch, or torch in bf16
    autocast where the hardware has it. The device is read at each call (the generator may move)."""

    def __init__(self, personal: PersonalGenerator, backend: str | None = None,
                 precision: Precision | None = None) -> None:
        self.personal, self.backend, self.precision = personal, backend, precision

    def __call__(self, landmark_images: torch.Tensor, warped: torch.Tensor | None = None,
                 paint_region: torch.Tensor | None = None) -> torch.Tensor:
        """``PersonalGenerator.generate``: (B, 3, H, W) landmark images in [-1, 1] (+ the warped shots and where
        G may paint) -> frames in [-1, 1], float32."""
        return self.personal.generate(landmark_images, warped, paint_region, painter=self.painter())

    def painter(self) -> Painter:
        """What paints this call: the cached ONNX Runtime session, else torch in this device's precision."""
        device = self.personal.psi.device
        if (self.backend or rendering_backend(device)) == "onnx":
            from talking_head.onnx_backend import painter_for  # onnxruntime is optional: imported only here

            painter = painter_for(self.personal)
            if painter is not None:
                return painter
        return torch_painter(self.personal, self.precision or device_precision(device))


def torch_painter(personal: PersonalGenerator, precision: Precision) -> Painter:
    """``Generator.paint`` in torch, in ``precision``'s memory layout and autocast."""
    network = personal.generator

    def paint(landmark_images: torch.Tensor, psi: torch.Tensor, warped: torch.Tensor | None
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if precision.channels_last:
            landmark_images, warped = (t.contiguous(memory_format=torch.channels_last) if t is not None else None
                                       for t in (landmark_images, warped))
        with torch.autocast(psi.device.type, dtype=torch.bfloat16, enabled=precision.bf16):
            return network.paint(landmark_images, psi, warped)

    return paint

