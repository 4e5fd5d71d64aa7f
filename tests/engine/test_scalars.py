"""Reading back mmengine's scalars.json of a run, across resumed sessions."""
import json

import pytest

from mmddetr.engine import read_scalars, training_seconds, work_dir_scalars


def _write(path, records):
    path.parent.mkdir(parents=True)
    path.write_text(''.join(json.dumps(r) + '\n' for r in records))


def test_a_later_session_replaces_the_iterations_it_repeats(tmp_path):
    first = tmp_path / '20260101_000000' / 'vis_data' / 'scalars.json'
    second = tmp_path / '20260101_010000' / 'vis_data' / 'scalars.json'
    _write(first, [dict(loss=3.0, time=0.5, iter=10, step=10), dict(loss=2.0, time=0.7, iter=20, step=20),
                   {'coco/bbox_mAP': 0.1, 'time': 0.1, 'step': 20}, dict(loss=1.9, time=0.6, iter=30, step=30)])
    # resumed from the checkpoint of iteration 20: iteration 30 again, then 40 and a validation
    _write(second, [dict(loss=1.5, time=0.4, iter=30, step=30), dict(loss=1.0, time=0.2, iter=40, step=40),
                    {'coco/bbox_mAP': 0.3, 'coco/bbox_mAP_s': -1.0, 'step': 40}])
    (tmp_path / 'other.json').write_text('{}\n')
    files = work_dir_scalars(str(tmp_path))
    assert files == [str(first), str(second)]
    train, val = read_scalars(files)
    assert [(r['iter'], r['loss']) for r in train] == [(10, 3.0), (20, 2.0), (30, 1.5), (40, 1.0)]
    assert [(r['step'], r['coco/bbox_mAP']) for r in val] == [(20, 0.1), (40, 0.3)]
    assert training_seconds(train) == pytest.approx(10 * 0.5 + 10 * 0.7 + 10 * 0.4 + 10 * 0.2)
    assert read_scalars(files[::-1])[0][2]['loss'] == 1.9  # the file given last wins
    assert work_dir_scalars(str(tmp_path / 'none')) == [] and read_scalars([]) == ([], [])
