"""Convert Deformable DETR checkpoints: the official code's or Hugging Face's to mmddetr's (mmdet's), and back to
Hugging Face's.

    python tools/convert_checkpoint.py --from official --to mmddetr OFFICIAL.pth OUT.pth
    python tools/convert_checkpoint.py --from hf --to mmddetr HF_MODEL_DIR OUT.pth
    python tools/convert_checkpoint.py --from mmddetr --to hf CHECKPOINT.pth OUT_DIR --config CONFIG

To mmddetr: writes OUT.pth and OUT.py, a config that inherits the shipped config of the checkpoint's variant and
sets what the checkpoint needs (the input projections' conv biases; from hf the layers, queries and classes of its
config.json), checked to load the checkpoint strictly, and prints the commands that test, infer and fine-tune with
them. OFFICIAL.pth: a checkpoint of fundamentalvision/Deformable-DETR (any variant, read from the keys).
HF_MODEL_DIR: a DeformableDetrForObjectDetection directory (config.json and model.safetensors or pytorch_model.bin),
e.g. a download of SenseTime/deformable-detr or a model fine-tuned from it; COCO's 91 category-id rows become the 80
CocoDataset classes (the 11 rows that name no class are kept in the checkpoint's meta for the way back).

To hf: writes OUT_DIR (config.json, model.safetensors) with transformers' own ResNet-50 backbone (no timm needed),
checked to load into DeformableDetrForObjectDetection.from_pretrained with no missing or unexpected weights; needs
transformers (`pip install -e ".[hf]"`). Nothing is ever overwritten.
"""
import argparse
import os.path as osp
import sys

from mmdet.datasets import CocoDataset

from mmddetr.convert import (arch_of, hf_to_mmddetr, mmddetr_to_hf, official_to_mmddetr, read_hf_dir,
                             read_official_checkpoint, write_hf_dir)
from mmddetr.convert.checkpoint import coco_classes, read_detector, save_converted
from mmddetr.convert.hf import architecture, class_names, mmdet_settings

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs')
DIRECTIONS = {('official', 'mmddetr'), ('hf', 'mmddetr'), ('mmddetr', 'hf')}


def shipped_config(num_feature_levels: int, with_box_refine: bool, two_stage: bool) -> str:
    """The shipped config of a variant (single-scale ones with refinement or two-stage: the single-scale config,
    which the written config then switches)."""
    if num_feature_levels == 1:
        name = 'deformable_detr_r50_single_scale.py'
    elif two_stage:
        name = 'deformable_detr_r50_refine_twostage.py'
    else:
        name = 'deformable_detr_r50_refine.py' if with_box_refine else 'deformable_detr_r50.py'
    return osp.join(CONFIGS, name)


def to_mmddetr(args) -> None:
    if args.source == 'official':
        converted, variant = official_to_mmddetr(read_official_checkpoint(args.src))
        meta = dict(converted_from=osp.basename(args.src), variant=variant)
        settings, classes = {'model.neck.bias': True}, CocoDataset.METAINFO['classes']
        base = shipped_config(variant['num_feature_levels'], variant['with_box_refine'], variant['as_two_stage'])
    else:
        config, state_dict = read_hf_dir(args.src)
        arch = architecture(config)
        converted, meta = hf_to_mmddetr(config, state_dict)
        meta['converted_from'] = osp.basename(osp.normpath(args.src))
        classes = class_names(config)
        settings = mmdet_settings(arch, len(classes))
        base = shipped_config(arch['num_feature_levels'], arch['with_box_refine'], arch['two_stage'])
    config_path = save_converted(converted, meta, args.dst, base, settings, classes)
    print(f'wrote {args.dst} ({len(converted)} tensors) and its config {config_path} ({osp.basename(base)} with '
          'what the checkpoint needs)')
    if not coco_classes(classes):
        print(f'its classes are not COCO\'s: point the datasets of {config_path} at data with those category names '
              '(data_root, ann_file, data_prefix) for test and fine-tuning')
    print(f'test (COCO AP):  python tools/test.py {config_path} {args.dst}')
    print(f'infer:           python tools/infer.py {config_path} {args.dst} IMAGES... --out-dir DIR')
    print(f'fine-tune:       python tools/train.py {config_path} --cfg-options load_from={args.dst}')
    print(f'to Hugging Face: python tools/convert_checkpoint.py --from mmddetr --to hf {args.dst} OUT_DIR '
          f'--config {config_path}')


def to_hf(args) -> None:
    if args.config is None:
        sys.exit('error: --config: --from mmddetr needs the config of the checkpoint')
    if osp.exists(args.dst):
        sys.exit(f'error: dst: {args.dst} exists; choose a new path (nothing is overwritten)')
    model, meta = read_detector(args.config, args.src)
    classes = tuple(model.dataset_meta.get('classes', ()))  # mmdet's init_detector: COCO's when the meta has none
    config, state_dict = mmddetr_to_hf(model.state_dict(), arch_of(model), classes, meta.get('hf'))
    write_hf_dir(args.dst, config, state_dict)
    print(f'wrote {args.dst} (config.json, model.safetensors: {len(state_dict)} tensors); transformers loads it with '
          'no missing or unexpected weights:')
    print(f'    DeformableDetrForObjectDetection.from_pretrained({args.dst!r})')


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--from', dest='source', required=True, choices=['official', 'hf', 'mmddetr'])
    parser.add_argument('--to', dest='target', required=True, choices=['mmddetr', 'hf'])
    parser.add_argument('src', help='official .pth, Hugging Face model directory, or mmddetr checkpoint')
    parser.add_argument('dst', help='new .pth (to mmddetr; its config is written beside it as .py) or new directory '
                        '(to hf)')
    parser.add_argument('--config', help='with --from mmddetr: the config of the checkpoint')
    args = parser.parse_args(argv)
    if (args.source, args.target) not in DIRECTIONS:
        sys.exit(f'error: --from {args.source} --to {args.target}: expected one of '
                 f'{", ".join(f"--from {s} --to {t}" for s, t in sorted(DIRECTIONS))}')
    try:
        if args.target == 'hf':
            to_hf(args)
        else:
            to_mmddetr(args)
    except ValueError as e:  # the converters' and checkpoint readers' errors name the file and what is wrong
        sys.exit(f'error: {e}')


if __name__ == '__main__':
    main()
