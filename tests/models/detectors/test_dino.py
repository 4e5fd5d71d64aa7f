"""mmddetr's DINO as its toy config builds it (docs/detector.md, 'DINO on our layers'): every FFN and
self-attention is ours, and the images reach the backbone channels-last on CPU."""
import torch


def test_every_ffn_and_self_attention_is_ours_and_images_run_channels_last(det_batch):
    from mmcv.cnn.bricks.transformer import FFN, MultiheadAttention
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmddetr.models import FastFFN, FastMultiheadAttention
    from mmddetr.registry import MODELS

    with DefaultScope.overwrite_default_scope('mmddetr'):
        model = MODELS.build(Config.fromfile('configs/toy/dino_r18_toy.py').model)  # as built, no init needed
    kinds = [type(m) for m in model.modules()]
    assert kinds.count(FastFFN) == 6 and kinds.count(FastMultiheadAttention) == 3  # 3 + 3 layers
    for m in model.modules():
        if isinstance(m, (FFN, FastFFN)):  # mmcv's FFN, or ours
            assert type(m) is FastFFN, type(m)
        if isinstance(m, MultiheadAttention):
            assert type(m) is FastMultiheadAttention, type(m)
    # torch's attention only inside ours
    assert kinds.count(FastMultiheadAttention) == sum(isinstance(m, torch.nn.MultiheadAttention)
                                                      for m in model.modules())

    layouts = []
    model.backbone.register_forward_pre_hook(
        lambda _, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    _, samples = det_batch(sizes=((64, 96), (48, 80)), num_gts=(2, 1), num_classes=5)
    gen = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, *sample.img_shape), dtype=torch.uint8, generator=gen) for sample in samples]
    model.train()
    model.extract_feat(model.data_preprocessor(dict(inputs=images, data_samples=samples), True)['inputs'])
    model.eval()
    with torch.no_grad():
        results = model.val_step(dict(inputs=images, data_samples=samples))  # the runner's inference path
    assert len(results) == 2 and layouts == [True, True]
