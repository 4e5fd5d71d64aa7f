"""mmddetr/paper.py: the tables' models are what their names say; what a page shows of the runs (means, ranges, rows
short of their seeds or images), the verdicts on the paper's claims, the convergence ratio, and which outputs the tool
may write. Runs are written here as the tool leaves them (run.json, result.json, mmengine's scalars.json); the tool
itself runs in tests/tools/test_paper_tables.py."""
import json
import os
import re

import pytest
import torch

from mmddetr.paper import (DETR, HIGHER, MARKER, MODELS, NOT_HIGHER, TABLE1, TABLE1_CLAIMS, TABLE2, TABLE2_CLAIMS,
                           Budget, Results, cell, check_outputs, convergence, judge, planned_runs, quick_options,
                           read_run, run_dir, write_page)

BUDGET = Budget(images=2400, detr_images=24000, val_every=1200, seeds=(0, 1))


def _fake_run(root, key, seed, images, maps, finished=True, batch=4):
    """A run's work dir as train() leaves it: run.json, result.json when ``finished``, and one mmengine session's
    scalars.json with a training record per 100 iterations (0.5 s each) and a validation at each {images: mAP} of
    ``maps`` (APs = mAP / 2, APm = mAP, APl -1: no large objects)."""
    work_dir = run_dir(str(root), key, seed, images)
    os.makedirs(os.path.join(work_dir, '20260101_000000', 'vis_data'))
    with open(os.path.join(work_dir, 'run.json'), 'w') as f:
        json.dump(dict(model=key, config=MODELS[key].config, options=MODELS[key].options, more_options={}, seed=seed,
                       images=images, batch_size=batch, iterations=images // batch, started='2026-01-01 00:00',
                       machine='test machine'), f)
    if finished:
        with open(os.path.join(work_dir, 'result.json'), 'w') as f:
            json.dump(dict(iterations=images // batch, finished='2026-01-01 01:00', machine='test machine'), f)
    last = max(maps) // batch
    records = [dict(loss=1.0, time=0.5, iter=i, step=i) for i in range(100, last + 1, 100)]
    records += [{'coco/bbox_mAP': m, 'coco/bbox_mAP_s': m / 2, 'coco/bbox_mAP_m': m, 'coco/bbox_mAP_l': -1.0,
                 'step': n // batch} for n, m in maps.items()]
    with open(os.path.join(work_dir, '20260101_000000', 'vis_data', 'scalars.json'), 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in records)


@pytest.fixture
def runs(tmp_path):
    """Both seeds of DETR, multi-scale, refine; seed 0 alone of two-stage; FPN unfinished at 1,200 of 2,400."""
    for seed, shift in ((0, 0.0), (1, 0.02)):
        _fake_run(tmp_path, DETR, seed, 24000, {1200 * i: 0.02 * i + shift for i in range(1, 21)})
        _fake_run(tmp_path, 'multi_scale', seed, 2400, {1200: 0.30 + shift, 2400: 0.45 + shift})
        _fake_run(tmp_path, 'refine', seed, 2400, {1200: 0.31 + shift, 2400: 0.46 + shift})
    _fake_run(tmp_path, 'two_stage', 0, 2400, {1200: 0.2, 2400: 0.50})
    _fake_run(tmp_path, 'fpn', 0, 2400, {1200: 0.35}, finished=False)
    return Results(str(tmp_path), BUDGET)


def test_results_show_means_ranges_and_what_is_short(runs):
    assert runs.at('multi_scale', 2400, 'mAP') == pytest.approx([0.45, 0.47])
    assert cell([0.45, 0.47]) == '0.460 (0.450-0.470)'
    assert runs.at('multi_scale', 2400, 'APl') == [] and cell([]) == '-'  # COCO's -1: no large objects
    assert cell([0.5]) == '0.500'
    assert runs.point('multi_scale') == 2400 and runs.shortfall('multi_scale', 2400, 2400) == ''
    assert runs.shortfall('two_stage', 2400, 2400) == '1 of 2 seeds'
    assert runs.point('fpn') == 1200 and runs.shortfall('fpn', 1200, 2400) == '1 of 2 seeds, 1,200 of 2,400 images'
    assert runs.point('single_scale') is None
    fpn = read_run(run_dir(runs.root, 'fpn', 0, 2400))
    assert fpn.finished is None and fpn.trained == 1200 and fpn.minutes == pytest.approx(300 * 0.5 / 60)
    assert read_run(run_dir(runs.root, DETR, 0, 24000)).finished == '2026-01-01 01:00'
    assert read_run(run_dir(runs.root, 'single_scale', 0, 2400)) is None


def test_judge_counts_a_difference_only_beyond_the_seeds_spread():
    assert judge([0.5, 0.6], [0.3, 0.4], HIGHER) == 'agrees'
    assert judge([0.3, 0.4], [0.5, 0.6], HIGHER) == 'disagrees: lower'
    assert judge([0.35, 0.5], [0.3, 0.4], HIGHER) == 'undecided: the seeds\' ranges overlap'
    assert judge([0.5], [0.4, 0.45], HIGHER) == 'agrees (a single seed: no spread to judge by)'
    assert judge([], [0.4], HIGHER) == 'not measured yet'
    assert judge([0.5, 0.6], [0.3, 0.4], NOT_HIGHER) == 'disagrees: higher'  # "an FPN adds nothing"
    assert judge([0.35, 0.5], [0.3, 0.4], NOT_HIGHER) == 'agrees'


def test_convergence_finds_where_each_model_reaches_detrs_final_map(runs):
    # DETR's final: 0.40 and 0.42 after 24,000 images, mean 0.41; multi-scale: 0.46 (mean) after 2,400, refine too
    lines = convergence(runs)
    assert lines[0].startswith('- DETR\'s final mAP: 0.410 after 24,000 images (the mean of 2 seeds).')
    assert '- Deformable DETR: reached it after 2,400 images, 10.0x fewer than DETR.' in lines
    assert '- + iterative box refinement: reached it after 2,400 images, 10.0x fewer than DETR.' in lines
    assert '- ++ two-stage: reached it after 2,400 images, 10.0x fewer than DETR.' in lines  # 0.2 at 1,200: not yet
    assert not any(line.startswith('- Deformable DETR single-scale') for line in lines)  # not run: no sentence


def test_no_convergence_ratio_against_a_detr_that_detects_nothing(tmp_path):
    for seed in (0, 1):
        _fake_run(tmp_path, DETR, seed, 24000, {1200 * i: 0.0 for i in range(1, 21)})
        _fake_run(tmp_path, 'multi_scale', seed, 2400, {1200: 0.1, 2400: 0.2})
    lines = convergence(Results(str(tmp_path), BUDGET))
    assert lines[0].startswith('- DETR\'s final mAP: 0.000 after 24,000 images')
    assert lines[1:] == ['- DETR has not started to detect (mAP 0): no ratio; train it longer (`--detr-images`).']


def test_the_page_holds_both_tables_the_verdicts_and_every_run(runs, tmp_path):
    out = tmp_path / 'page.md'
    png = check_outputs(str(out))
    write_page(runs, str(out), png, ['2026-01-01 00:00  python tools/paper_tables.py'])
    page = out.read_text()
    assert page.startswith(MARKER + '\n') and 'Quick mode' not in page
    assert open(png, 'rb').read(8) == b'\x89PNG\r\n\x1a\n'
    for row in TABLE1:
        assert f'| {row.name} | {row.epochs} | ' + ' | '.join(f'{x:.1f}' for x in row.figures) in page
    assert '| DETR (mmdet) | 24,000 | 0.410 (0.400-0.420) | 0.205 (0.200-0.210) | 0.410 (0.400-0.420) | - | 2 |  |' \
        in page
    assert '| DETR (mmdet), at the Deformable DETR\'s images | 2,400 | 0.050 (0.040-0.060) |' in page
    assert '| ++ two-stage | 2,400 | 0.500 | 0.250 | 0.500 | - | 1 | 1 of 2 seeds |' in page
    assert '| + iterative box refinement | - | - | - | - | - | - | not run |' not in page
    assert '| Deformable DETR single-scale | - | - | - | - | - | - | not run |' in page
    assert ('Deformable DETR above DETR at equal training images (paper: 43.8 against DETR-DC5\'s 35.3, both 50 '
            'epochs); here Deformable DETR after 2,400 images: 0.460 (0.450-0.470), DETR (mmdet) after 2,400: 0.050 '
            '(0.040-0.060): **agrees**') in page
    assert 'large objects: DETR\'s final APl above Deformable DETR\'s' in page and '**not measured yet**' in page
    assert 'an FPN adds nothing (paper: 43.8 with and without); here multi-scale + FPN after 2,400 images: -' in page
    verdict = r': \*\*(agrees|disagrees: (lower|higher)|undecided: [^*]+|not measured yet)( \([^*]+\))?\*\*'
    for claim in TABLE1_CLAIMS + TABLE2_CLAIMS:  # each claim on a line of its own, its verdict at the end
        lines = re.findall(rf'^- {re.escape(claim.text)} \(paper: {re.escape(claim.paper)}\); here .*{verdict}$', page,
                           re.MULTILINE)
        assert len(lines) == 1, claim.text
    table2 = page.split('## Table 2')[1].split('## Runs')[0]
    assert table2.count('| not run | - |') == 3 and table2.count('a new code path) |') == 2  # not expressible
    assert '| yes | yes | 4 | BiFPN | 43.9 | 25.6 | 47.4 | 57.7 | not run | - | - | - | - | - | - | ' \
        'mmdet 3.3.0 has no BiFPN neck |' in table2
    assert '| no | no | 1 | w/o | 39.7 | 21.2 | 44.3 | 56.0 | single-scale, K = 1 | - | - | - | - | - | - | not run |' \
        in table2  # expressible, not trained yet
    assert '| yes | yes | 4 | FPN | 43.8 | 26.5 | 47.3 | 58.1 | multi-scale + FPN | 1,200 | 0.350 |' in table2
    assert '| 1 of 2 seeds, 1,200 of 2,400 images |' in table2
    assert '| fpn, seed 0 | configs/toy/deformable_detr_r18_toy_fpn.py | - | 1,200 of 2,400 | 2.5 | ' \
        '2026-01-01 00:00 | not yet | test machine |' in page
    assert '| multi_scale, seed 1 | configs/toy/deformable_detr_r18_toy_refine_twostage.py | ' \
        'model.with_box_refine=False model.as_two_stage=False | 2,400 of 2,400 |' in page
    assert '```\n2026-01-01 00:00  python tools/paper_tables.py\n```' in page
    # the learning curves' table: a row per validation, DETR's alone after 2,400
    assert '| 24,000 | - | - | - | - | - | - | - | 0.410 (0.400-0.420) |' in page


def test_the_tool_writes_only_its_own_page(tmp_path):
    out = tmp_path / 'page.md'
    assert check_outputs(str(out)) == str(tmp_path / 'page_curves.png')  # nothing there yet
    out.write_text(MARKER + '\nan earlier page of the tool\n')
    (tmp_path / 'page_curves.png').write_bytes(b'\x89PNG')
    assert check_outputs(str(out)) == str(tmp_path / 'page_curves.png')  # its own: rewritten
    for first_line in (b'my page\n', b'\xff\xfe not text\n', b''):
        out.write_bytes(first_line)
        with pytest.raises(ValueError, match='exists and is not a page this tool wrote; nothing is overwritten'):
            check_outputs(str(out))
    with pytest.raises(ValueError, match='its curves would go to .*other_curves.png, which exists'):
        (tmp_path / 'other_curves.png').write_bytes(b'mine')
        check_outputs(str(tmp_path / 'other.md'))


def test_runs_go_seed_by_seed_with_detrs_long_run_last():
    runs = planned_runs([DETR, 'fpn', 'multi_scale'], BUDGET)
    assert [(m.key, seed, images) for m, seed, images in runs] == [
        ('multi_scale', 0, 2400), ('fpn', 0, 2400), (DETR, 0, 24000),
        ('multi_scale', 1, 2400), ('fpn', 1, 2400), (DETR, 1, 24000)]
    assert run_dir('root', 'fpn', 1, 2400) == os.path.join('root', 'fpn_seed1_2400img')


@pytest.mark.parametrize('key', list(MODELS))
def test_the_tables_models_are_what_their_names_say(key, tmp_path):
    """Each model of the tables, its config with its overrides (and --quick's, which only shrink it) checked and
    merged as tools/train.py does, builds the variant the paper's row describes."""
    from mmdet.models.necks import FPN, ChannelMapper
    from mmengine.registry import DefaultScope

    from mmddetr.engine import load_config
    from mmddetr.registry import MODELS as REGISTRY
    model = MODELS[key]
    cfg = load_config(model.config, {**model.options, **quick_options(str(tmp_path) + '/')}, str(tmp_path))
    with DefaultScope.overwrite_default_scope('mmddetr'):
        detector = REGISTRY.build(cfg.model)
    assert cfg.train_dataloader.dataset.data_root == str(tmp_path) + '/' and cfg.train_dataloader.batch_size == 2
    assert len(detector.encoder.layers) == len(detector.decoder.layers) == 1
    if key == DETR:
        assert type(detector).__name__ == 'DETR' and type(detector).__module__.startswith('mmdet.')
        return
    attentions = [layer.self_attn for layer in detector.encoder.layers] + [
        layer.cross_attn for layer in detector.decoder.layers]
    levels, points = {a.num_levels for a in attentions}, {a.num_points for a in attentions}
    assert levels == {detector.num_feature_levels} == {1 if key.startswith('single_scale') else 4}
    assert points == {1 if key.endswith('_k1') else 4}
    assert (detector.with_box_refine, detector.as_two_stage) == {
        'refine': (True, False), 'two_stage': (True, True)}.get(key, (False, False))
    assert type(detector.neck) is (FPN if key == 'fpn' else ChannelMapper)
    if key == 'fpn':  # GroupNorm after its convolutions, as after the input projections it replaces
        assert all(isinstance(conv.norm, torch.nn.GroupNorm) for conv in detector.neck.fpn_convs)
    with torch.no_grad():
        assert len(detector.extract_feat(torch.zeros(1, 3, 64, 64))) == detector.num_feature_levels
    for row in TABLE2:  # Table 2's flags of the row this model stands for
        if row.key == key:
            assert (row.ms_inputs, row.ms_attention, row.fpn) == (levels == {4}, levels == {4}, 'FPN' * (
                key == 'fpn') or 'w/o') and {row.points} == points
