"""The paper's networks: shapes for every size, identity only through AdaIN/P, D's projection on W."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from talking_head.config import MODEL_SIZES, ModelConfig
from talking_head.models.talking_head_model import TalkingHeadModel
from talking_head.models.blocks import bake_spectral_norm


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("size", ["tiny", "small", "paper"])
def test_output_shapes_for_every_size(size: str) -> None:
    config = ModelConfig.named(size, num_videos=3)
    model = TalkingHeadModel(config).eval()
    n = config.image_size
    frames, landmarks = torch.rand(2, 3, n, n) * 2 - 1, torch.rand(2, 3, n, n) * 2 - 1
    with torch.no_grad():
        embedding = model.embedder(frames, landmarks)
        person = model.embedder.embed_person(frames, landmarks)
        image = model.generator(landmarks, embedding, warped=frames if config.texture_path else None)
        score, features = model.discriminator(frames, landmarks, torch.tensor([0, 2]))
    assert embedding.shape == (2, config.embedding_dim) and (embedding >= 0).all()  # ReLU after sum pooling
    assert person.shape == (config.embedding_dim,)
    assert image.shape == (2, 3, n, n) and image.abs().max() <= 1
    assert score.shape == (2,)
    assert features[-1].shape[-1] == config.encoder_min_resolution


def test_paper_config_has_the_papers_scale(capsys: pytest.CaptureFixture[str]) -> None:
    model = TalkingHeadModel(MODEL_SIZES["paper"])
    sizes = {name: count(getattr(model, name)) / 1e6 for name in ("embedder", "generator", "discriminator")}
    with capsys.disabled():
        print("\npaper config parameters (M): " + ", ".join(f"{k} {v:.1f}" for k, v in sizes.items()))
    # Re-implementations of the paper report G of ~30-40 M parameters (P included) and E, D of ~15-20 M.
    assert 25 < sizes["generator"] < 50
    assert 10 < sizes["embedder"] < 25
    assert 10 < sizes["discriminator"] < 30
    assert model.generator.projection.in_features == 512


def test_adain_changes_output_only_through_projection() -> None:
    torch.manual_seed(0)
    g = TalkingHeadModel(ModelConfig.named("tiny", texture_path=False)).generator.eval()
    dim = g.config.embedding_dim
    landmarks = torch.rand(2, 3, 32, 32) * 2 - 1
    e1, e2 = torch.rand(1, dim), torch.rand(1, dim) * 3
    with torch.no_grad():
        torch.nn.init.normal_(g.projection.weight, std=0.5)
        out1, out2 = g(landmarks, e1), g(landmarks, e2)
        assert (out1 - out2).abs().mean() > 1e-3  # a different person, a different image
        # The embedding matters only through psi = P e: the same psi gives the same image ...
        assert torch.equal(g(landmarks, psi=g.project(e1)), out1)
        # ... and with P's weight zeroed every embedding collapses to the same output.
        g.projection.weight.zero_()
        assert torch.allclose(g(landmarks, e1), g(landmarks, e2))


def test_generator_requires_exactly_one_identity_source(tiny_model: TalkingHeadModel) -> None:
    landmarks = torch.zeros(1, 3, 32, 32)
    with pytest.raises(ValueError, match="exactly one"):
        tiny_model.generator(landmarks, warped=landmarks)


def test_the_texture_path_needs_its_warp_and_the_papers_generator_refuses_one(tiny_model: TalkingHeadModel) -> None:
    landmarks, embedding = torch.zeros(1, 3, 32, 32), torch.rand(1, tiny_model.config.embedding_dim)
    with pytest.raises(ValueError, match="needs the warped shots"):
        tiny_model.generator(landmarks, embedding)
    paper_style = TalkingHeadModel(ModelConfig.named("tiny", texture_path=False)).generator
    with pytest.raises(ValueError, match="has no texture path"):
        paper_style(landmarks, embedding, warped=landmarks)


def test_an_untrained_composite_is_the_warp_at_the_warps_resolution(tiny_model: TalkingHeadModel) -> None:
    landmarks, embedding = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(1, tiny_model.config.embedding_dim)
    warped = torch.rand(2, 3, 96, 96) * 2 - 1  # three times the model's resolution
    with torch.no_grad():
        out = tiny_model.generator(landmarks, embedding, warped=warped)
    assert out.shape == warped.shape
    assert (out - warped).abs().max() < 2 / 255  # under one 8-bit level either side
    # ... and the mask is a real switch: opened fully, the frame is G's painting, not the warp.
    with torch.no_grad():
        tiny_model.generator.mask_conv.bias.fill_(-30.0)
        painted = tiny_model.generator(landmarks, embedding, warped=warped)
    assert (painted - warped).abs().mean() > 0.1 and painted.abs().max() <= 1


def test_outside_the_paint_region_the_frame_is_the_warp_whatever_the_mask(tiny_model: TalkingHeadModel) -> None:
    landmarks, embedding = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(1, tiny_model.config.embedding_dim)
    warped = torch.rand(2, 3, 64, 64) * 2 - 1
    region = torch.zeros(2, 1, 64, 64)
    region[..., 32:] = 1.0  # G may paint the right half only
    bias = tiny_model.generator.mask_conv.bias.detach().clone()
    try:
        with torch.no_grad():
            tiny_model.generator.mask_conv.bias.fill_(-30.0)  # a mask that wants to paint everywhere
            out = tiny_model.generator(landmarks, embedding, warped=warped, paint_region=region)
    finally:
        with torch.no_grad():
            tiny_model.generator.mask_conv.bias.copy_(bias)
    assert torch.equal(out[..., :32], warped[..., :32])
    assert (out[..., 32:] - warped[..., 32:]).abs().mean() > 0.1


@pytest.mark.parametrize("size", [64, 77, 32])  # upsampled 2x, by an odd factor, and not resized
def test_the_composite_blends_only_the_paint_regions_window_and_equals_the_whole_frame_blend(size: int) -> None:
    from talking_head.models.generator import Generator
    from talking_head.shot_bank import PAINT_FLOOR, paint_region, paint_window

    generator = torch.Generator().manual_seed(0)
    painted, mask = torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1, torch.rand(2, 1, 32, 32, generator=generator)
    warped = torch.rand(2, 3, size, size, generator=generator) * 2 - 1
    lips = torch.zeros(2, 68, 2)
    lips[:, 60:68] = torch.tensor([[0.3, 0.5], [0.4, 0.45], [0.5, 0.45], [0.6, 0.45], [0.7, 0.5], [0.6, 0.55],
                                   [0.5, 0.55], [0.4, 0.55]]) * size
    lips[1, 60:68] += 0.1 * size  # the second frame's mouth elsewhere: the window covers both
    region = paint_region(lips, size)
    rows, cols = paint_window(region)
    assert 0 < rows.start and rows.stop < size and 0 < cols.start and cols.stop < size  # a window, not the frame
    assert region[..., rows, cols].max() > 0.99 and region[..., :rows.start, :].max() <= PAINT_FLOOR

    def whole(image: torch.Tensor) -> torch.Tensor:
        return F.interpolate(image, size=size, mode="bilinear", align_corners=False) if size != 32 else image

    blend = 1 - region * (1 - whole(mask))
    expected = blend * warped + (1 - blend) * whole(painted)
    out = Generator.composite(painted, mask, warped, region)  # no gradient wanted: OpenCV samples
    assert (out - expected).abs().max() < 2 * PAINT_FLOOR + 0.02 and (out - expected).abs().mean() < 1e-3
    painted.requires_grad_()  # training: grid_sample, and the gradient reaches the painting
    trained = Generator.composite(painted, mask, warped, region)
    assert (trained - expected).abs().max() < 2 * PAINT_FLOOR + 1e-5
    trained.sum().backward()
    assert painted.grad.abs().sum() > 0
    assert torch.equal(Generator.composite(painted, mask, warped, torch.zeros_like(region)), warped)


def test_discriminator_score_depends_on_video_through_W(tiny_model: TalkingHeadModel) -> None:
    d = tiny_model.discriminator
    frames, landmarks = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        d.W.normal_()
        v, _ = d.features(frames, landmarks)
        scores = [d.score(v, torch.tensor([i])).item() for i in range(d.W.shape[1])]
        assert len(set(round(s, 6) for s in scores)) == d.W.shape[1]
        # r = v^T (W_i + w0) + b exactly, and an explicit w stands in for a column (fine-tuning).
        expected = v[0] @ (d.W[:, 1] + d.w0) + d.b
        assert torch.allclose(d.score(v, torch.tensor([1])), expected)
        assert torch.allclose(d.score(v, w=d.W[:, 1]), expected)
        d.W[:, 1] = d.W[:, 0]
        assert torch.allclose(d.score(v, torch.tensor([0])), d.score(v, torch.tensor([1])))


def test_baking_spectral_norm_keeps_outputs(tiny_model: TalkingHeadModel) -> None:
    landmarks, embedding = torch.rand(2, 3, 32, 32), torch.rand(1, tiny_model.config.embedding_dim)
    with torch.no_grad():
        tiny_model.generator.mask_conv.bias.fill_(0.0)  # let G's painting show
        before = tiny_model.generator(landmarks, embedding, warped=landmarks)
        baked = bake_spectral_norm(tiny_model.generator)
        assert torch.allclose(baked(landmarks, embedding, warped=landmarks), before, atol=1e-5)


def test_named_config_rejects_unknown_size() -> None:
    with pytest.raises(ValueError, match="unknown model size"):
        ModelConfig.named("huge")
