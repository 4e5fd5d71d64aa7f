"""A misspelt ``type`` in a config stops tools/train.py and tools/test.py with one line naming the key, the
registries searched and the closest names."""
import pytest

from conftest import TOY


@pytest.mark.parametrize('tool, args, option, expected', [
    ('train.py', [], 'model.backbone.type=ResNett',
     "error: model.backbone.type: unknown type 'ResNett'; searched the registries mmddetr::model, mmdet::model, "
     'mmengine::model'),
    ('test.py', [__file__], 'test_dataloader.dataset.type=ToyShapesDatasett',  # built lazily, in runner.test()
     "error: test_dataloader.dataset.type: unknown type 'ToyShapesDatasett'; searched the registries "
     'mmddetr::dataset, mmdet::dataset, mmengine::dataset'),
], ids=['train', 'test'])
def test_misspelt_type_stops_with_key_registries_and_close_names(run_tool, toy_options, tmp_path, tool, args, option,
                                                                expected):
    proc = run_tool(tool, TOY, *args, '--work-dir', str(tmp_path), '--cfg-options', *toy_options, option)
    assert proc.returncode == 1
    assert expected in proc.stderr and 'did you mean ' + option.split('=')[1][:-1] in proc.stderr
    assert 'Traceback' not in proc.stderr
