"""README: a second run of ``tools/install.sh`` checks what is there and only rebuilds changed sources."""
import os
import subprocess

from tool_runs import check_ok

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_second_install_run_installs_and_compiles_nothing():
    # the suite runs after install.sh (the README's test command), so this is at least its second run
    run = check_ok(subprocess.run(['bash', 'tools/install.sh'], cwd=REPO, capture_output=True, text=True))
    lines = (run.stdout + run.stderr).splitlines()
    assert not [line for line in lines if line.startswith('[install] installing')], run.stdout
    compiled = [line for line in lines if ' -c ' in line and ('c++' in line or 'nvcc' in line)]
    assert not compiled, f'the second run recompiled {len(compiled)} sources: {compiled[:2]}'
    assert '[install] mmddetr extension: kernels for ' in run.stdout
