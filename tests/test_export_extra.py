"""docs/export.md: the ``export`` extra is onnx, onnxscript, onnxruntime and openvino, and tools/install.sh installs the
versions it names; setup.py, install.sh and the doc must agree."""
import ast
import os
import re

from packaging.requirements import Requirement

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(path):
    with open(os.path.join(REPO, path)) as f:
        return f.read()


def test_install_sh_pins_the_export_extra_at_the_versions_export_md_names():
    [extras] = [ast.literal_eval(node.value) for node in ast.walk(ast.parse(_read('setup.py')))
                if isinstance(node, ast.keyword) and node.arg == 'extras_require']
    extra = {req.name: req.specifier for req in map(Requirement, extras['export'])}
    assert set(extra) == {'onnx', 'onnxscript', 'onnxruntime', 'openvino'}

    install = _read('tools/install.sh')
    [checked] = re.findall(r'^have ("onnx==.*) \|\| \{$', install, re.MULTILINE)  # what counts as installed
    [installed] = re.findall(r'^\s*\$PIP ("onnx==.*)$', install, re.MULTILINE)  # what is installed otherwise
    pins = dict(re.findall(r'"([\w-]+)==([\d.]+)"', checked))
    assert dict(re.findall(r'"([\w-]+)==([\d.]+)"', installed)) == pins
    assert set(pins) == set(extra)
    for name, version in pins.items():
        assert version in extra[name], f'install.sh pins {name} {version}, outside setup.py\'s {extra[name]}'

    doc = ' '.join(_read('docs/export.md').split())
    named = re.search(r'`bash tools/install.sh` installs onnx ([\d.]+), onnxscript ([\d.]+), onnxruntime ([\d.]+) and '
                      r'openvino ([\d.]+)', doc)
    assert named and named.groups() == (pins['onnx'], pins['onnxscript'], pins['onnxruntime'], pins['openvino'])
