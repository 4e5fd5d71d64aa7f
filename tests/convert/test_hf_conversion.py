"""Hugging Face checkpoints ↔ mmddetr's through ``tools/convert_checkpoint.py`` (run in this process): transformers'
``DeformableDetrForObjectDetection`` built from its config with random weights (tests/hf_models.py) for each variant,
saved by transformers, converted to mmddetr and back. The same normalised pixels and pixel mask give the same logits
and boxes per query and the same detections after each side's post-processing, on a padded batch of two sizes; the
way back reproduces transformers' files exactly; the hub's layout (timm's backbone names, every alias, a .bin) reads
as transformers' own."""
import copy
import importlib.util
import json
import logging
import os.path as osp
import shutil
import sys
from types import SimpleNamespace

import pytest
import torch
from scipy.optimize import linear_sum_assignment

from hf_models import HUB_COCO_ID2LABEL, VARIANTS, hf_config, hf_model

transformers = pytest.importorskip('transformers')
from safetensors.torch import load_file  # noqa: E402 (installed with transformers)

HERE = osp.dirname(osp.abspath(__file__))
spec = importlib.util.spec_from_file_location('convert_checkpoint', osp.join(HERE, '..', '..', 'tools',
                                                                             'convert_checkpoint.py'))
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)

SIZES = ((64, 96), (96, 64))  # (h, w) of the two images, padded to 96 x 96
# the hub's COCO rows (category ids) that name a class, in id order: mmdet's 80 CocoDataset classes
NAMED_ROWS = [int(i) for i, name in HUB_COCO_ID2LABEL.items() if name != 'N/A']


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """``get(variant)``: the Hugging Face model, the directory transformers saved it to, and the tool's conversions
    to mmddetr (checkpoint, config, the detector ``tools/infer.py`` would load) and back; made once per variant."""
    from mmddetr.engine import load_detector
    made = {}

    def get(variant):
        if variant not in made:
            root = tmp_path_factory.mktemp(variant)
            model = hf_model(variant)
            model.save_pretrained(root / 'hf')
            tool.main(['--from', 'hf', '--to', 'mmddetr', str(root / 'hf'), str(root / 'ours.pth')])
            tool.main(['--from', 'mmddetr', '--to', 'hf', str(root / 'ours.pth'), str(root / 'back'), '--config',
                       str(root / 'ours.py')])
            made[variant] = SimpleNamespace(hf=model, root=root, ours=load_detector(str(root / 'ours.py'),
                                                                                   str(root / 'ours.pth')))
        return made[variant]

    return get


def _inputs(padded_batch):
    """The padded images (2, 3, 96, 96), transformers' pixel mask (1 on pixels) and our data samples."""
    from mmdet.structures import DetDataSample
    images, sizes = padded_batch(SIZES)
    mask = torch.zeros(images.shape[0], *images.shape[-2:], dtype=torch.long)
    for i, (h, w) in enumerate(SIZES):
        mask[i, :h, :w] = 1
    samples = [DetDataSample(metainfo=dict(img_shape=size, ori_shape=size, batch_input_shape=tuple(images.shape[-2:]),
                                           scale_factor=(1.0, 1.0))) for size in SIZES]
    return images, mask, samples


def _same_queries_order(ours: torch.Tensor, theirs: torch.Tensor, max_moved: float) -> list:
    """Per image, the permutation of our queries into transformers' order: the one-to-one matching with the nearest
    outputs (bs, num_queries, C). Two-stage queries are the top proposals, and two proposals whose scores tie within
    rounding may come in either order; the permutation may move at most ``max_moved`` of the queries."""
    orders = []
    for o, t in zip(ours, theirs):
        order = torch.from_numpy(linear_sum_assignment(torch.cdist(t, o).numpy())[1])
        assert (order != torch.arange(len(order))).float().mean() <= max_moved, order
        orders.append(order)
    return orders


@pytest.mark.parametrize('variant', list(VARIANTS))
def test_same_logits_and_boxes_per_query(variant, converted, padded_batch):
    c = converted(variant)
    images, mask, samples = _inputs(padded_batch)
    assert type(c.hf).__module__.startswith('transformers.') and type(c.ours).__module__.startswith('mmddetr.')
    with torch.no_grad():
        theirs = c.hf(pixel_values=images, pixel_mask=mask)
        cls, box = c.ours._forward(images, samples)  # (num_layers, bs, num_queries, 80 | 4)
    logits_t, boxes_t = theirs.logits[..., NAMED_ROWS], theirs.pred_boxes  # (bs, num_queries, 80 | 4)
    logits_o, boxes_o = cls[-1], box[-1]
    if VARIANTS[variant].get('two_stage'):
        order = _same_queries_order(torch.cat([logits_o, boxes_o], -1), torch.cat([logits_t, boxes_t], -1), 0.25)
        logits_o, boxes_o = (torch.stack([x[b, order[b]] for b in range(len(order))]) for x in (logits_o, boxes_o))
    torch.testing.assert_close(logits_o, logits_t, atol=1e-4, rtol=0)
    torch.testing.assert_close(boxes_o, boxes_t, atol=1e-4, rtol=0)
    assert (boxes_t - boxes_t.mean((0, 1))).abs().max() > 0.05  # the boxes are not all alike


@pytest.mark.parametrize('variant', list(VARIANTS))
def test_same_detections_after_each_sides_post_processing(variant, converted, padded_batch, assert_same_detections):
    """transformers' image processor's ``post_process_object_detection`` (top 100 of queries x 91 rows) against our
    detector's ``predict`` (top 100 of queries x 80 classes). Its detections of the 11 rows that name no class ("N/A")
    have no counterpart: the others are our top ones. transformers does not clip boxes to the image, mmdet does:
    its boxes are compared clipped."""
    from mmengine.structures import InstanceData
    from transformers.models.deformable_detr.image_processing_pil_deformable_detr import \
        DeformableDetrImageProcessorPil
    c = converted(variant)
    images, mask, samples = _inputs(padded_batch)
    with torch.no_grad():
        theirs = DeformableDetrImageProcessorPil().post_process_object_detection(
            c.hf(pixel_values=images, pixel_mask=mask), threshold=0.0, target_sizes=list(SIZES))
        ours = c.ours.predict(images, copy.deepcopy(samples))
    for t, o, (h, w) in zip(theirs, ours, SIZES):
        named = torch.tensor([int(label) in NAMED_ROWS for label in t['labels']], dtype=torch.bool)
        assert len(t['scores']) == 100 and named.any()
        clipped = torch.minimum(t['boxes'][named].clamp(min=0), torch.tensor([w, h, w, h], dtype=torch.float32))
        theirs_named = InstanceData(scores=t['scores'][named], bboxes=clipped,
                                    labels=torch.tensor([NAMED_ROWS.index(int(k)) for k in t['labels'][named]]))
        assert_same_detections(o.pred_instances[:len(theirs_named)], theirs_named, score_atol=1e-4, box_atol=1e-2)


@pytest.mark.parametrize('variant', list(VARIANTS))
def test_round_trip_reproduces_transformers_files(variant, converted):
    """hf → mmddetr → hf: the same config.json and the same tensors under the same names; the dropped COCO rows come
    back from the checkpoint's meta."""
    from transformers import DeformableDetrForObjectDetection
    c = converted(variant)
    original, back = load_file(str(c.root / 'hf' / 'model.safetensors')), load_file(str(c.root / 'back' /
                                                                                          'model.safetensors'))
    assert sorted(back) == sorted(original)
    assert all(torch.equal(back[key], value) for key, value in original.items())
    with open(c.root / 'hf' / 'config.json') as f, open(c.root / 'back' / 'config.json') as g:
        assert json.load(g) == json.load(f)
    records = []  # transformers' warnings (its loggers do not propagate)
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logging.getLogger('transformers').addHandler(handler)
    try:
        model, info = DeformableDetrForObjectDetection.from_pretrained(str(c.root / 'back'), output_loading_info=True)
    finally:
        logging.getLogger('transformers').removeHandler(handler)
    assert not any(info[key] for key in ('missing_keys', 'unexpected_keys', 'mismatched_keys', 'error_msgs')), info
    assert 'timm' not in sys.modules  # transformers' own ResNet
    # with refinement a class head per layer; without two-stage transformers 5.x ties them to the first one's
    # unless they differ, and says so
    refine = VARIANTS[variant].get('with_box_refine', False)
    assert torch.equal(model.class_embed[0].weight, model.class_embed[1].weight) != refine
    assert any('will NOT tie them' in record.getMessage() for record in records) == (variant == 'refine')
    ours = torch.load(c.root / 'ours.pth', weights_only=True)
    assert ours['meta']['dataset_meta']['classes'] == tuple(HUB_COCO_ID2LABEL[str(i)] for i in NAMED_ROWS)
    assert ours['state_dict']['bbox_head.cls_branches.0.weight'].shape[0] == 80


@pytest.mark.parametrize('variant', list(VARIANTS))
def test_head_ties_are_transformers(variant):
    """The ties the converter assumes (which heads a file may leave out, and which it writes) are transformers'."""
    from transformers import DeformableDetrForObjectDetection

    from mmddetr.convert.hf import HEAD_PARAMS, architecture, head_ties
    config = hf_config(variant, HUB_COCO_ID2LABEL)
    expected = DeformableDetrForObjectDetection(config).all_tied_weights_keys
    ties = head_ties(architecture(config.to_dict()))
    assert {f'{target}.{param}': f'{source}.{param}' for target, source in ties.items()
            for param in HEAD_PARAMS[target.split('.')[-2]]} == expected


def _torchvision_names(backbone: torch.nn.Module) -> dict:
    """transformers' ResNet-50 weight names → torchvision's (mmdet's ResNet, timm's), pairing the convolutions and
    norms in the order they run (as transformers' own timm-to-ResNet conversion script pairs modules), against mmdet's
    ResNet-50."""
    from mmdet.models.backbones import ResNet

    def run_order(model):
        order = []
        hooks = [m.register_forward_hook(lambda m, i, o, name=name: order.append((name, m)))
                 for name, m in model.named_modules() if not list(m.children()) and list(m.state_dict())]
        with torch.no_grad():
            model(torch.zeros(1, 3, 64, 64))
        for hook in hooks:
            hook.remove()
        return order

    torchvision = ResNet(depth=50)
    torchvision.eval()  # mmdet's ResNet.train returns None
    theirs, ours = run_order(backbone), run_order(torchvision)
    assert len(theirs) == len(ours) == 2 * 53  # 53 convolutions, each with its norm
    names = {}
    for (name_t, module_t), (name_o, module_o) in zip(theirs, ours):
        for key, value in module_t.state_dict().items():
            assert module_o.state_dict()[key].shape == value.shape, (name_t, name_o, key)
            names[f'{name_t}.{key}'] = f'{name_o}.{key}'
    return names


@pytest.mark.parametrize('variant', ['plain', 'refine_twostage'])
def test_hub_layout_reads_as_transformers_own(variant, converted, tmp_path):
    """A hub directory of transformers 4.x: the backbone is timm's resnet50 (config.json without backbone_config;
    torchvision's weight names, frozen in official_deformable_detr_keys.json from the official code's torchvision
    backbone), with num_batches_tracked of the downsampling norms, every tied alias written, in pytorch_model.bin. It
    converts to the very checkpoint transformers' own files give, and back to those files. (No timm model runs here:
    that the hub's files use these names is checked against the frozen torchvision names only.)"""
    from transformers import DeformableDetrForObjectDetection
    c = converted(variant)
    state_dict = load_file(str(c.root / 'hf' / 'model.safetensors'))
    aliases = DeformableDetrForObjectDetection(hf_config(variant, HUB_COCO_ID2LABEL)).all_tied_weights_keys
    for target, source in aliases.items():  # torch.save keeps both names of a shared tensor
        if target not in state_dict:
            state_dict[target] = state_dict[source]
        elif source not in state_dict:
            state_dict[source] = state_dict[target]
    prefix = 'model.backbone.conv_encoder.model.'
    timm = _torchvision_names(c.hf.model.backbone.model)
    hub = {(prefix + timm[key[len(prefix):]] if key.startswith(prefix) else key): value
           for key, value in state_dict.items()}
    with open(osp.join(HERE, 'official_deformable_detr_keys.json')) as f:
        official = json.load(f)['variants'][variant]['keys']
    body = 'backbone.0.body.'
    assert {key[len(prefix):]: list(value.shape) for key, value in hub.items() if key.startswith(prefix)} == {
        key[len(body):]: shape for key, shape in official if key.startswith(body)}
    for stage in range(1, 5):
        hub[f'{prefix}layer{stage}.0.downsample.1.num_batches_tracked'] = torch.tensor(0)
    with open(c.root / 'hf' / 'config.json') as f:
        config = json.load(f)
    del config['backbone_config']
    config.update(use_timm_backbone=True, backbone='resnet50', use_pretrained_backbone=True,
                  transformers_version='4.32.0')
    (tmp_path / 'hub').mkdir()
    torch.save(hub, tmp_path / 'hub' / 'pytorch_model.bin')
    with open(tmp_path / 'hub' / 'config.json', 'w') as f:
        json.dump(config, f)
    tool.main(['--from', 'hf', '--to', 'mmddetr', str(tmp_path / 'hub'), str(tmp_path / 'ours.pth')])
    from_hub, from_own = (torch.load(path, weights_only=True)['state_dict']
                          for path in (tmp_path / 'ours.pth', c.root / 'ours.pth'))
    assert sorted(from_hub) == sorted(from_own)
    assert all(torch.equal(from_hub[key], value) for key, value in from_own.items())
    tool.main(['--from', 'mmddetr', '--to', 'hf', str(tmp_path / 'ours.pth'), str(tmp_path / 'back'), '--config',
               str(tmp_path / 'ours.py')])
    original, back = (load_file(str(path / 'model.safetensors')) for path in (c.root / 'hf', tmp_path / 'back'))
    assert sorted(back) == sorted(original)
    assert all(torch.equal(back[key], value) for key, value in original.items())


def _copy(src, dst, config_changes=None, weights=None):
    """A copy of the Hugging Face directory ``src`` with config.json updated and ``weights`` added or replaced."""
    from safetensors.torch import save_file
    shutil.copytree(src, dst)
    if config_changes is not None:
        with open(dst / 'config.json') as f:
            config = json.load(f)
        config.update(config_changes)
        with open(dst / 'config.json', 'w') as f:
            json.dump(config, f)
    state_dict = dict(load_file(str(dst / 'model.safetensors')), **(weights or {}))
    save_file(state_dict, str(dst / 'model.safetensors'), metadata={'format': 'pt'})
    return dst


def _fails(args, *messages):
    """The tool stops with one ``error:`` line holding every one of ``messages``."""
    with pytest.raises(SystemExit) as exit_:
        tool.main(args)
    code = exit_.value.code
    assert code.startswith('error: ') and '\n' not in code and all(m in code for m in messages), code


def test_without_transformers_the_way_to_hf_says_what_to_install(converted, tmp_path, monkeypatch):
    c = converted('plain')
    monkeypatch.setitem(sys.modules, 'transformers', None)  # import raises ImportError
    _fails(['--from', 'mmddetr', '--to', 'hf', str(c.root / 'ours.pth'), str(tmp_path / 'back'), '--config',
            str(c.root / 'ours.py')], 'writing a Hugging Face directory needs transformers',
           'install it with `pip install -e ".[hf]"` or `bash tools/install.sh`')
    assert not (tmp_path / 'back').exists()


def test_clear_errors_and_nothing_written(converted, tmp_path):
    c = converted('plain')
    hf, out = c.root / 'hf', tmp_path / 'out.pth'
    to_ours = ['--from', 'hf', '--to', 'mmddetr']
    _fails([*to_ours, str(tmp_path / 'none'), str(out)], 'no such directory')
    _fails([*to_ours, str(_copy(hf, tmp_path / 'detr', {'model_type': 'detr'})), str(out)],
           "config.json: model_type is 'detr', expected 'deformable_detr'")
    (tmp_path / 'no_weights').mkdir()
    shutil.copy(hf / 'config.json', tmp_path / 'no_weights')
    _fails([*to_ours, str(tmp_path / 'no_weights'), str(out)], 'no model.safetensors or pytorch_model.bin')
    _fails([*to_ours, str(_copy(hf, tmp_path / 'r101', {'backbone_config': {'model_type': 'resnet',
                                                                           'depths': [3, 4, 23, 3]}})), str(out)],
           'unsupported a backbone other than ResNet-50')
    first_head = load_file(str(hf / 'model.safetensors'))['class_embed.0.weight']
    _fails([*to_ours, str(_copy(hf, tmp_path / 'untied', weights={'class_embed.1.weight': first_head + 1})), str(out)],
           "class_embed.1.weight differs from class_embed.0.weight: mmddetr's model has one branch for both")
    _fails([*to_ours, str(_copy(hf, tmp_path / 'layers', {'decoder_layers': 3})), str(out)],
           'the checkpoint has no model.decoder.layers.2.self_attn.q/k/v_proj.weight')
    labels = {str(i): f'class {i}' for i in range(5)}  # config.json of 5 classes, weights of 91 rows
    _fails([*to_ours, str(_copy(hf, tmp_path / 'labels', {'id2label': labels})), str(out)],
           f'the converted checkpoint does not fit {tmp_path / "out.py"}: 4 weights of another shape (first: '
           'bbox_head.cls_branches.0.weight (91, 256) for (5, 256)')
    assert not list(tmp_path.glob('out.*'))  # no checkpoint, no config
    _fails(['--from', 'mmddetr', '--to', 'hf', str(c.root / 'ours.pth'), str(tmp_path / 'back'), '--config',
            str(converted('refine_twostage').root / 'ours.py')], 'weights are missing')
    _fails(['--from', 'mmddetr', '--to', 'hf', str(c.root / 'ours.pth'), str(tmp_path / 'back')], '--config')
    checkpoint = torch.load(c.root / 'ours.pth', weights_only=True)
    checkpoint['meta']['dataset_meta']['classes'] = ('a', 'b', 'c')
    torch.save(checkpoint, tmp_path / 'three_names.pth')
    _fails(['--from', 'mmddetr', '--to', 'hf', str(tmp_path / 'three_names.pth'), str(tmp_path / 'back'), '--config',
            str(c.root / 'ours.py')], '3 class names for the 80 classes of the model')
    assert not (tmp_path / 'back').exists()
    before = {p.name: p.read_bytes() for p in (c.root / 'back').iterdir()}
    _fails(['--from', 'mmddetr', '--to', 'hf', str(c.root / 'ours.pth'), str(c.root / 'back'), '--config',
            str(c.root / 'ours.py')], f'{c.root / "back"} exists; choose a new path (nothing is overwritten)')
    assert {p.name: p.read_bytes() for p in (c.root / 'back').iterdir()} == before
    _fails(['--from', 'hf', '--to', 'hf', str(hf), str(tmp_path / 'back')], 'expected one of')


def test_the_written_directory_must_load_in_transformers_with_nothing_missing_unexpected_or_reshaped(tmp_path):
    """write_hf_dir (the end of ``--to hf``) stops, leaving no directory, unless transformers loads what it wrote
    cleanly: on a tiny model's own files (tiny ResNet, 32 channels) with a weight added, left out or reshaped."""
    from transformers import DeformableDetrConfig, DeformableDetrForObjectDetection, ResNetConfig

    from mmddetr.convert.hf import HFCheckpointError, write_hf_dir
    backbone = ResNetConfig(depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 32, 64], embedding_size=8,
                            out_features=['stage2', 'stage3', 'stage4'])
    DeformableDetrForObjectDetection(DeformableDetrConfig(
        backbone_config=backbone, d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=4,
        id2label={'0': 'a', '1': 'b'})).save_pretrained(tmp_path / 'tiny')
    with open(tmp_path / 'tiny' / 'config.json') as f:
        config = json.load(f)
    state_dict = load_file(str(tmp_path / 'tiny' / 'model.safetensors'))
    out = tmp_path / 'out'
    for bad, problem in ((dict(state_dict, **{'model.extra': torch.zeros(2)}), "'unexpected_keys': ['model.extra']"),
                         ({k: v for k, v in state_dict.items() if k != 'model.level_embed'},
                          "'missing_keys': ['model.level_embed']"),
                         (dict(state_dict, **{'model.level_embed': torch.zeros(4, 16)}),
                          "'mismatched_keys': [('model.level_embed', torch.Size([4, 16]), torch.Size([4, 32]))]")):
        with pytest.raises(HFCheckpointError, match='transformers does not load the converted checkpoint cleanly: ') \
                as error:
            write_hf_dir(str(out), config, bad)
        assert problem in str(error.value)
        assert sorted(p.name for p in tmp_path.iterdir()) == ['tiny']  # no directory, no partial one
    write_hf_dir(str(out), config, state_dict)  # its own files: written
    assert sorted(p.name for p in out.iterdir()) == ['config.json', 'model.safetensors']
