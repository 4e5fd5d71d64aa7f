"""Two-stage proposals: geometry, validity, padding, top-k selection and the query embedding."""
import torch
from torch import nn

from mmddetr.models import TwoStageProposalHead

SHAPES = torch.tensor([[8, 10], [4, 5]])


def _padded_mask():
    # image 0 valid on 6 x 5 of level 0 (3 x 3 of level 1, nearest-downsampled); image 1 unpadded
    masks = []
    for (H, W), (h, w) in zip(SHAPES.tolist(), [(6, 5), (3, 3)]):
        m = torch.zeros(2, H, W, dtype=torch.bool)
        m[0, h:] = True
        m[0, :, w:] = True
        masks.append(m.flatten(1))
    return torch.cat(masks, 1)  # (bs, num_keys)


def test_proposals_geometry_validity_and_masking():
    head = TwoStageProposalHead(embed_dims=16, num_proposals=7)
    memory = torch.randn(2, 100, 16)
    mask = _padded_mask()
    valid_ratios = torch.tensor([[[5 / 10, 6 / 8], [3 / 5, 3 / 4]], [[1., 1.], [1., 1.]]])  # (bs, levels, (w, h))
    out_memory, proposals = head.gen_encoder_output_proposals(memory, mask, SHAPES, valid_ratios)
    assert out_memory.shape == (2, 100, 16) and proposals.shape == (2, 100, 4)
    boxes = proposals.sigmoid()
    # image 0, level 0, pixel (row 2, col 3): centre over the valid 5 x 6 region, size 0.05
    torch.testing.assert_close(boxes[0, 2 * 10 + 3], torch.tensor([3.5 / 5, 2.5 / 6, 0.05, 0.05]))
    # image 1, level 1, pixel (row 1, col 4): unpadded, size 0.1
    torch.testing.assert_close(boxes[1, 80 + 1 * 5 + 4], torch.tensor([4.5 / 5, 1.5 / 4, 0.1, 0.1]))
    invalid = torch.isinf(proposals).all(-1)
    assert torch.isinf(proposals).any(-1).eq(invalid).all()  # all four or none
    assert invalid[mask].all()  # every padded pixel
    finite = proposals[~invalid].sigmoid()
    assert ((finite > 0.01) & (finite < 0.99)).all()
    # invalid pixels see zero memory: one constant transformed vector
    zero_out = head.memory_trans_norm(head.memory_trans_fc(torch.zeros(16)))
    torch.testing.assert_close(out_memory[invalid], zero_out.expand(int(invalid.sum()), -1))


def test_forward_selects_top_scores_and_embeds_boxes():
    torch.manual_seed(0)
    head = TwoStageProposalHead(embed_dims=16, num_proposals=7)
    head.init_weights()
    cls_branch, reg_branch = nn.Linear(16, 3), nn.Linear(16, 4)
    memory = torch.randn(2, 100, 16, requires_grad=True)
    out = head(memory, None, SHAPES, torch.ones(2, 2, 2), cls_branch, reg_branch)
    assert out['query'].shape == out['query_pos'].shape == (2, 7, 16)
    assert out['reference_points'].shape == (2, 7, 4) and not out['reference_points'].requires_grad
    assert out['enc_outputs_class'].shape == (2, 100, 3) and out['enc_outputs_coord'].shape == (2, 100, 4)
    top = out['enc_outputs_class'][..., 0].topk(7, dim=1)[1]
    expected = torch.gather(out['enc_outputs_coord'], 1, top[..., None].expand(-1, -1, 4))
    torch.testing.assert_close(out['reference_points'], expected.detach())
    assert head.get_proposal_pos_embed(torch.zeros(1, 1, 4)).shape == (1, 1, 32)


def test_fewer_pixels_than_proposals():
    head = TwoStageProposalHead(embed_dims=16, num_proposals=300)
    out = head(torch.randn(1, 100, 16), None, SHAPES, torch.ones(1, 2, 2), nn.Linear(16, 2), nn.Linear(16, 4))
    assert out['query'].shape == (1, 100, 16)


def test_centres_on_the_bounds_are_invalid_as_in_mmdet():
    """mmdet divides (j + 0.5) by the whole valid size: a valid size of 50 puts row 0's centre on 0.01 and row 49's
    on 0.99, both invalid. Ours decides in pixels of the valid size rounded, so that neither a runtime's division
    nor the valid ratio (50 / 85 * 85 is 50.000004 in float32, 50 / 97 * 97 is 49.999996) moves them inside."""
    shapes = torch.tensor([[85, 97], [50, 150]])  # level 0: image 1 valid on 50 x 50; level 1 unpadded
    mask = torch.zeros(2, 85 * 97 + 50 * 150, dtype=torch.bool)
    level0 = mask[:, :85 * 97].view(2, 85, 97)
    level0[1, 50:] = level0[1, :, 50:] = True
    valid_ratios = torch.tensor([[[1., 1.], [1., 1.]], [[50 / 97, 50 / 85], [1., 1.]]])  # as get_valid_ratio
    assert (valid_ratios[1, 0] * torch.tensor([97., 85.])).tolist() == [49.999996185302734, 50.000003814697266]
    _, proposals = TwoStageProposalHead(embed_dims=16).gen_encoder_output_proposals(
        torch.randn(2, mask.shape[1], 16), mask, shapes, valid_ratios)
    # mmdet's: the centres divided by the valid rows and columns counted in the mask, float32
    expected = []
    for (H, W), start, size in zip(shapes.tolist(), (0, 85 * 97), (0.05, 0.1)):
        level_mask = mask[:, start:start + H * W].view(2, H, W)
        valid_wh = torch.stack([(~level_mask[:, 0, :]).sum(1), (~level_mask[:, :, 0]).sum(1)], -1).float()
        y, x = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                              indexing='ij')
        centres = (torch.stack([x, y], -1).view(1, -1, 2) + 0.5) / valid_wh[:, None]  # (2, H * W, 2)
        expected.append(((centres > 0.01) & (centres < 0.99)).all(-1) & (0.01 < size < 0.99))
    expected = torch.cat(expected, 1) & ~mask
    valid = ~torch.isinf(proposals).all(-1)
    assert torch.equal(valid, expected)
    rows = valid[:, 85 * 97:].view(2, 50, 150)[:, :, 75]  # level 1: 50 rows
    assert not rows[:, 0].any() and not rows[:, 49].any() and rows[:, 1:49].all()
    assert not valid[1, :85 * 97].view(85, 97)[49].any() and not valid[1, :85 * 97].view(85, 97)[:, 0].any()


def test_validity_is_mmdets_for_every_valid_size():
    """Valid widths 1 to 4,000 of a level 4,000 wide, as valid ratios (``w / 4000``, which gives ``w`` back only up to
    its last bit): the proposals valid where mmdet's (j + 0.5) / w lies in (0.01, 0.99), in float32."""
    head = TwoStageProposalHead(embed_dims=2)
    width = 4000
    for sizes in torch.arange(1, width + 1).split(500):
        valid_ratios = torch.stack([sizes / width, torch.ones(len(sizes))], -1)[:, None]  # (bs, 1 level, 2)
        _, proposals = head.gen_encoder_output_proposals(torch.zeros(len(sizes), width, 2), None,
                                                         torch.tensor([[1, width]]), valid_ratios)
        centres = (torch.arange(width) + 0.5) / sizes[:, None].float()  # (bs, width) mmdet's
        assert torch.equal(~torch.isinf(proposals).all(-1), (centres > 0.01) & (centres < 0.99))
