"""tests/conftest.py's autouse ``restore_process_state``: in a session of two tests, run in this order, the second
finds none of what the first changed process-wide (the first as a Runner, a launcher or a benchmark would)."""
import os

INNER = '''
import logging
import os
import sys

import torch
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

before = {}


def test_changes_the_process(tmp_path):
    before.update(scope=DefaultScope.get_current_instance(), loggers=list(MMLogger._instance_dict),
                  environ=dict(os.environ), path=list(sys.path), threads=torch.get_num_threads(), draw=torch.rand(4))
    DefaultScope.get_instance('leak', scope_name='mmddetr')
    before['logger'] = MMLogger.get_instance('leak', log_file=str(tmp_path / 'leak.log'))
    os.environ['MMDDETR_LEAK'] = '1'
    os.environ['PYTHONPATH'] = str(tmp_path)
    sys.path.insert(0, str(tmp_path))
    torch.set_num_threads(3 - min(before['threads'], 2))  # 1 <-> 2
    torch.manual_seed(123)
    assert DefaultScope.get_current_instance().scope_name == 'mmddetr'


def test_finds_it_as_before():
    assert DefaultScope.get_current_instance() is before['scope']
    assert list(MMLogger._instance_dict) == before['loggers']
    assert not [h for h in before['logger'].handlers if isinstance(h, logging.FileHandler) and h.stream is not None]
    environ = {k: v for k, v in os.environ.items() if k != 'PYTEST_CURRENT_TEST'}
    assert environ == {k: v for k, v in before['environ'].items() if k != 'PYTEST_CURRENT_TEST'}
    assert sys.path == before['path']
    assert torch.get_num_threads() == before['threads']
    assert torch.equal(torch.rand(4), before['draw'])  # the same draw: each test starts from seed 0
'''


def test_a_test_leaves_nothing_behind(pytester):
    with open(os.path.join(os.path.dirname(__file__), 'conftest.py')) as f:
        pytester.makeconftest(f.read())
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest('-p', 'no:randomly', '-p', 'no:cacheprovider')
    result.assert_outcomes(passed=2)
