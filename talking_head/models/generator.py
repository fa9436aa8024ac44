"""Generator G(y, e): landmark image -> frame of the person whose embedding is e.

Person-specific information reaches G's weights only through AdaIN: psi = P e (+ a learned offset)
sets the scale and bias of every adaptive normalisation. Few-shot fine-tuning replaces psi by a free
parameter psi' initialised from P e, which is why ``forward`` accepts either an embedding or psi.

With ``ModelConfig.texture_path`` G also takes the person's shots warped onto the target landmarks
(``talking_head.shot_bank``), at any resolution, and returns ``mask * warped + (1 - mask) * painted``:
the photo's own pixels where the warp is right, G's painting where no warp can be (a mouth opening,
eyes opening, a turning head's far side). Mask and painting are made at the model's resolution and
upsampled, so the detail comes from the photo and only the corrections from the network. The mask
starts at 1 (an untrained G returns the warp), so training can only improve on the warp. Callers
confine the painting to the mouth (``shot_bank.paint_region``): the one place a warp must invent
(teeth, tongue, lips parting), and where G's painting, learnt from synthetic heads, costs a real
photo the least of its likeness (measured: painting eyes too, dlib's identity distance rose from 0.32
to 0.39 and the mouth-follow r fell from 0.84 to 0.75). The shipped G, trained for hours on a CPU,
still paints little there: the dark of an opened mouth and the seam of a closed one come from the
texture itself (``shot_bank.mouth_interior``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talking_head.config import ModelConfig
from talking_head.models.blocks import AdaIN, AdaptiveResBlock, SelfAttention, encoder_blocks, sn_conv
from talking_head.shot_bank import Window, paint_window
from talking_head.warp import sample

#: The mask's starting logit: sigmoid(7) = 0.9991, so an untrained composite is the warp to within
#: 0.002 (half an 8-bit level). Its weights start at zero; Adam's steps do not shrink with the
#: sigmoid's small slope there, so the mask still learns at the optimiser's pace.
MASK_INIT_LOGIT = 7.0


class Generator(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels_at
        # Encoder: image_size -> bottleneck, instance norm, attention where configured.
        plan, resolution = [], config.image_size
        cin = config.landmark_channels + (config.image_channels if config.texture_path else 0)
        while resolution > config.generator_bottleneck_resolution:
            resolution //= 2
            plan.append((cin, c(resolution), resolution))
            cin = c(resolution)
        self.down = encoder_blocks(plan, config.attention_resolutions, instance_norm=True)
        bottleneck = config.generator_bottleneck_resolution
        self.residual = nn.ModuleList(AdaptiveResBlock(c(bottleneck), c(bottleneck))
                                      for _ in range(config.generator_res_blocks))
        # Decoder: bottleneck -> image_size, AdaIN upsampling blocks, attention where configured.
        self.up = nn.ModuleList()
        self.up_attention = nn.ModuleDict()
        resolution = bottleneck
        while resolution < config.image_size:
            self.up.append(AdaptiveResBlock(c(resolution), c(resolution * 2), upsample=True))
            resolution *= 2
            if resolution in config.attention_resolutions and resolution < config.image_size:
                self.up_attention[str(len(self.up) - 1)] = SelfAttention(c(resolution))
        self.out_norm = AdaIN(c(config.image_size))
        self.out_conv = sn_conv(c(config.image_size), config.image_channels)
        if config.texture_path:
            self.mask_conv = nn.Conv2d(c(config.image_size), 1, 3, padding=1)
            nn.init.zeros_(self.mask_conv.weight)
            nn.init.constant_(self.mask_conv.bias, MASK_INIT_LOGIT)
        adaptive = [*self.residual, *self.up, self.out_norm]
        self.adain_sizes = [block.num_params for block in adaptive]
        self.num_adain_params = sum(self.adain_sizes)
        # P: the projection from the embedding to psi. Its bias makes AdaIN start as (scale 1, shift 0),
        # so an untrained G behaves like a plain instance-normalised network.
        self.projection = nn.Linear(config.embedding_dim, self.num_adain_params)
        nn.init.normal_(self.projection.weight, std=0.02 / config.embedding_dim ** 0.5)
        with torch.no_grad():
            self.projection.bias.copy_(self._identity_psi())

    def _identity_psi(self) -> torch.Tensor:
        parts = []
        for size in self.adain_sizes:
            parts += [torch.ones(size // 2), torch.zeros(size // 2)]
        return torch.cat(parts)

    def project(self, embedding: torch.Tensor) -> torch.Tensor:
        """psi = P e: (B, embedding_dim) -> (B, num_adain_params)."""
        return self.projection(embedding)

    def forward(self, landmark_images: torch.Tensor, embedding: torch.Tensor | None = None,
                psi: torch.Tensor | None = None, warped: torch.Tensor | None = None,
                paint_region: torch.Tensor | None = None) -> torch.Tensor:
        """Render (B, 3, H, W) frames in [-1, 1] from landmark images and either ``embedding`` or ``psi``.

        A single embedding/psi row is broadcast over the batch (one person, many poses). With the
        texture path ``warped`` (B, 3, R, R), the shots warped onto the targets, is required and the
        frames come out at its resolution R. ``paint_region`` (B, 1, R, R) in [0, 1], if given, is where
        G may paint at all: outside it the frame is the warp, whatever the mask says.
        """
        if (embedding is None) == (psi is None):
            raise ValueError("pass exactly one of `embedding` or `psi`")
        if self.config.texture_path != (warped is not None):
            raise ValueError("this generator " + ("needs the warped shots (`warped`)" if self.config.texture_path
                                                  else "has no texture path: do not pass `warped`"))
        if psi is None:
            psi = self.project(embedding.reshape(-1, self.config.embedding_dim))
        painted, mask = self.paint(landmark_images, psi, warped)
        return painted if mask is None else self.composite(painted, mask, warped, paint_region)

    def paint(self, landmark_images: torch.Tensor, psi: torch.Tensor, warped: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The network alone, at the model's resolution: the painting in [-1, 1] and, on the texture path, the
        mask in [0, 1] (``warped`` at any resolution, area-downsampled). Apart from ``forward`` so that an
        exported graph (``talking_head.backends``) holds this part and ``composite`` stays in torch."""
        psi = psi.reshape(-1, self.num_adain_params).expand(landmark_images.shape[0], -1)
        params = psi.split(self.adain_sizes, dim=1)
        h = landmark_images
        if warped is not None:
            h = torch.cat([h, self.at_model_resolution(warped).to(h.dtype)], dim=1)
        for block in self.down:
            h = block(h)
        for block, p in zip(self.residual, params):
            h = block(h, p)
        for i, block in enumerate(self.up):
            h = block(h, params[len(self.residual) + i])
            if str(i) in self.up_attention:
                h = self.up_attention[str(i)](h)
        h = torch.relu(self.out_norm(h, params[-1]))
        painted = torch.tanh(self.out_conv(h))
        if warped is None:
            return painted, None
        # In float32 even under bf16 autocast: bf16 rounds sigmoid(7) to exactly 1, whose gradient is 0,
        # and neither the mask nor the painting would ever learn (measured: both frozen for 200 steps).
        return painted.float(), torch.sigmoid(self.mask_conv(h).float())

    def at_model_resolution(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, R, R) -> (B, C, S, S) at the model's resolution S, area-averaged (as it is unchanged)."""
        size = self.config.image_size
        return image if image.shape[-1] == size else F.interpolate(image, size=(size, size), mode="area")

    @staticmethod
    def composite(painted: torch.Tensor, mask: torch.Tensor, warped: torch.Tensor,
                  paint_region: torch.Tensor | None = None) -> torch.Tensor:
        """``paint``'s painting and mask blended into ``warped`` at its resolution (``forward``).

        With a ``paint_region`` only the window where it exceeds ``shot_bank.PAINT_FLOOR`` (in any frame) is blended;
        the rest of the frame is the warp. Painting, mask and blend over the whole of 256 px frames cost
        3.4 ms a frame, most of it on pixels the region leaves to the warp.
        """
        warped = warped.float()
        if paint_region is None:
            painted, mask = _resized_window(painted, mask, warped.shape[-2:], None)
            return mask * warped + (1 - mask) * painted
        window = paint_window(paint_region)
        out = warped.clone()
        if window is not None:
            painted, mask = _resized_window(painted, mask, warped.shape[-2:], window)
            mask = 1 - paint_region[..., window[0], window[1]].float() * (1 - mask)
            out[..., window[0], window[1]] = mask * warped[..., window[0], window[1]] + (1 - mask) * painted
        return out


def _resized_window(painted: torch.Tensor, mask: torch.Tensor, size: torch.Size, window: Window | None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """``painted`` and ``mask`` bilinearly resized to ``size`` (as ``F.interpolate`` with
    ``align_corners=False``), only inside ``window`` (None: all of it)."""
    height, width = size
    if window is None:
        window = slice(0, height), slice(0, width)
    if painted.shape[-2:] == size:
        return painted[..., window[0], window[1]], mask[..., window[0], window[1]]
    rows, cols = (torch.arange(w.start, w.stop, dtype=torch.float32, device=painted.device) for w in window)
    ys = (rows + 0.5) * (painted.shape[-2] / height) - 0.5  # the source pixel each output pixel's centre falls on
    xs = (cols + 0.5) * (painted.shape[-1] / width) - 0.5
    pixel_map = torch.stack(torch.broadcast_tensors(xs[None, :], ys[:, None]), dim=-1)
    both = sample(torch.cat([painted, mask.to(painted.dtype)], dim=1), pixel_map.expand(len(painted), -1, -1, -1))
    return both[:, :-1], both[:, -1:]
