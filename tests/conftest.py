import os
import sys

import pytest
import torch

pytest_plugins = ['pytester']  # tests/test_process_state.py runs an inner session


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: minutes-long test; deselect with -m "not slow"')


@pytest.fixture(autouse=True)
def mmdet_keeps_mmcv_attention():
    """A test that loads a config importing ``mmddetr.mmdet_ops`` switches mmdet to our attention for the process;
    mmdet's own models in later tests (the parity references) must keep mmcv's."""
    yield
    switch = sys.modules.get('mmddetr.models.mmdet_attention')
    if switch is not None and switch.mmdet_uses_mmddetr_attention():
        switch.use_mmddetr_attention_in_mmdet(False)


@pytest.fixture(autouse=True)
def restore_process_state():
    """What a test changes process-wide is put back after it, so that the suite passes in any order: mmengine's
    global managers (a Runner leaves the default registry scope at ``mmddetr``, under which unprefixed names in mmdet's
    own configs build our classes, and its logger, message hub and visualizer current), ``os.environ``, ``sys.path``,
    torch's number of threads and its CPU random state. Every test starts from ``torch.manual_seed(0)``, so its
    unseeded draws do not depend on the tests run before it. The file handlers of loggers created in the test are
    closed."""
    from mmengine.logging import MMLogger
    from mmengine.utils import ManagerMixin

    def managers(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from managers(sub)

    instances = {cls: cls._instance_dict.copy() for cls in managers(ManagerMixin)}
    environ, path, threads = dict(os.environ), list(sys.path), torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield
    for name, logger in MMLogger._instance_dict.items():
        if name not in instances[MMLogger]:
            for handler in logger.handlers:
                handler.close()
    for cls, saved in instances.items():
        cls._instance_dict = saved
    for key in (set(environ) | set(os.environ)) - {'PYTEST_CURRENT_TEST'}:  # pytest's own, set at every phase
        if key not in environ:
            del os.environ[key]
        elif os.environ.get(key) != environ[key]:
            os.environ[key] = environ[key]
    sys.path[:] = path
    torch.set_num_threads(threads)


@pytest.fixture
def msda_inputs():
    """Factory of random op inputs: ``make(bs, shapes, heads, dims, queries, points, dtype, device, spread)``.

    Locations are uniform in [-spread, 1 + spread], so points outside the maps are common.
    """

    def make(bs=2, shapes=((6, 4), (3, 2), (1, 1)), heads=2, dims=8, queries=5, points=3, dtype=torch.float64,
             device='cpu', spread=0.2, seed=0):
        gen = torch.Generator().manual_seed(seed)
        spatial_shapes = torch.tensor(shapes, dtype=torch.int64)
        sizes = spatial_shapes.prod(1)
        level_start_index = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
        levels = len(shapes)
        value = torch.randn(bs, int(sizes.sum()), heads, dims, generator=gen, dtype=torch.float64)
        locations = torch.rand(bs, queries, heads, levels, points, 2, generator=gen, dtype=torch.float64)
        locations = locations * (1 + 2 * spread) - spread
        weights = torch.rand(bs, queries, heads, levels, points, generator=gen, dtype=torch.float64)
        cast = dict(device=device)
        return (value.to(dtype=dtype, **cast), spatial_shapes.to(**cast), level_start_index.to(**cast),
                locations.to(dtype=torch.promote_types(dtype, torch.float32), **cast),
                weights.to(dtype=torch.promote_types(dtype, torch.float32), **cast))

    return make


@pytest.fixture
def logged_warnings():
    """The messages of warnings logged to mmengine's current logger (``print_log(..., logger='current')``) while
    the test runs."""
    import logging

    from mmengine.logging import MMLogger

    messages = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


def same_detection_pairs(ours, theirs, score_atol=1e-4, box_atol=1e-4, box_rtol=0.0):
    """(len(ours), len(theirs)) bool, True where detection i of ``ours`` and j of ``theirs`` (``scores``, ``labels``,
    ``bboxes``) are the same: same label, scores within ``score_atol``, boxes within ``box_atol + box_rtol * |box|``."""
    box_tolerance = box_atol + box_rtol * theirs.bboxes.abs()[None]
    return (((ours.scores[:, None] - theirs.scores[None]).abs() <= score_atol)
            & (ours.labels[:, None] == theirs.labels[None])
            & ((ours.bboxes[:, None] - theirs.bboxes[None]).abs() <= box_tolerance).all(-1))


@pytest.fixture(scope='session')
def detection_pairs():
    """``pairs(ours, theirs, score_atol, box_atol, box_rtol)``: the one rule by which two detections are the same
    (:func:`same_detection_pairs`); ``pairs(...).diagonal().all()`` says two lists agree rank by rank."""
    return same_detection_pairs


@pytest.fixture(scope='session')
def assert_same_detections():
    """``check(ours, theirs, score_atol, box_atol, box_rtol)`` on two images' predictions (``pred_instances``).

    The sorted scores must agree rank by rank, and every detection of each must have one in the other that is the
    same by :func:`same_detection_pairs`. Detections whose scores tie within rounding may come out of the top-k in
    either order on another CPU; this comparison does not depend on it.
    """

    def check(ours, theirs, score_atol=1e-4, box_atol=1e-4, box_rtol=0.0):
        assert len(ours) == len(theirs)
        torch.testing.assert_close(ours.scores, theirs.scores, atol=score_atol, rtol=0)
        close = same_detection_pairs(ours, theirs, score_atol, box_atol, box_rtol)
        unmatched = int((~close.any(1)).sum()) + int((~close.any(0)).sum())
        assert unmatched == 0, f'{unmatched} detections have no counterpart of the same label, score and box'

    return check


@pytest.fixture(scope='session')
def no_dropout():
    """``off(model)`` → ``model`` with every dropout probability zero (``nn.Dropout`` and its subclasses such as
    ``FastDropout``, and ``nn.MultiheadAttention``'s), so two implementations compare without random masks."""

    def off(model):
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
            elif isinstance(m, torch.nn.MultiheadAttention):
                m.dropout = 0.0
        return model

    return off


@pytest.fixture(scope='session')
def perturb():
    """``perturb(model, seed=0)`` → ``model`` with random weights away from the zero-initialised ones (sampling
    offsets, box layers), so that no path hides behind a zero (:func:`random_weights.perturb`)."""
    from random_weights import perturb as apply
    return apply


@pytest.fixture(scope='session')
def padded_batch():
    """``make(sizes, seed=0)`` → normalised random images of the (h, w) ``sizes`` padded to one size, (bs, 3, H, W),
    and their valid sizes (bs, 2) int64: the exported model's inputs."""

    def make(sizes, seed=0):
        gen = torch.Generator().manual_seed(seed)
        pad_h, pad_w = max(h for h, _ in sizes), max(w for _, w in sizes)
        images = torch.zeros(len(sizes), 3, pad_h, pad_w)
        for i, (h, w) in enumerate(sizes):
            images[i, :, :h, :w] = torch.randn(3, h, w, generator=gen)
        return images, torch.tensor(sizes)

    return make


@pytest.fixture(scope='session')
def spawn_ranks():
    """``spawn(fn, args, nprocs=2, limit_s=300)``: ``torch.multiprocessing.spawn`` that fails the test when the ranks
    have not finished after ``limit_s`` (killing them) instead of stalling the suite on a hang."""
    import time

    def spawn(fn, args, nprocs=2, limit_s=300):
        processes = torch.multiprocessing.spawn(fn, args=args, nprocs=nprocs, join=False)
        deadline = time.monotonic() + limit_s
        while not processes.join(timeout=5):
            if time.monotonic() > deadline:
                for process in processes.processes:
                    process.kill()
                pytest.fail(f'the {nprocs} ranks did not finish in {limit_s} s')

    return spawn


@pytest.fixture(scope='session')
def packages_of():
    """``of(model)`` → ``{'modules': ..., 'assigners': ..., 'match_costs': ...}``, the top-level packages (mmdet,
    mmddetr, mmcv, ...) of the classes ``model`` is made of, for parity tests to assert which implementation each side
    is. Assigners and match costs (the objects an assigner holds, alone or in lists) come from config names that the
    registry scope in force resolves."""

    def package(obj):
        return type(obj).__module__.split('.')[0]

    def of(model):
        found = dict(modules=set(), assigners=set(), match_costs=set())
        for module in model.modules():
            found['modules'].add(package(module))
            assigner = getattr(module, 'assigner', None)
            if assigner is not None:
                found['assigners'].add(package(assigner))
                held = [v for value in vars(assigner).values() for v in (value if isinstance(value, list) else [value])]
                found['match_costs'].update(package(cost) for cost in held if package(cost) != 'builtins')
        return found

    return of


@pytest.fixture
def build_detector():
    """Factory: ``build(config_path, scope='mmddetr', cfg_options=None, **model_overrides)`` → detector with random
    init, no pretrained backbone. ``cfg_options`` merge dotted keys (``{'model.bbox_head.num_classes': 3}``);
    ``scope='mmdet'`` builds through mmdet's own registry (mmdet's classes)."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    def build(config, scope='mmddetr', cfg_options=None, **overrides):
        cfg = Config.fromfile(config)
        cfg.merge_from_dict(cfg_options or {})
        cfg.model.backbone.init_cfg = None
        cfg.model.update(overrides)
        if scope == 'mmdet':
            from mmdet.registry import MODELS
            from mmdet.utils import register_all_modules
            register_all_modules(init_default_scope=False)
        else:
            from mmddetr.registry import MODELS
        with DefaultScope.overwrite_default_scope(scope):
            model = MODELS.build(cfg.model)
            model.init_weights()
        return model

    return build


@pytest.fixture
def det_batch():
    """Factory: ``make(sizes=((h, w), ...), num_gts=(n, ...), seed=0)`` → (inputs, data_samples) of a padded batch of
    normalised random images with random ground-truth boxes (x1, y1, x2, y2) inside each image."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    def make(sizes=((160, 224), (128, 192)), num_gts=(3, 2), num_classes=80, seed=0):
        gen = torch.Generator().manual_seed(seed)
        pad_h, pad_w = max(h for h, _ in sizes), max(w for _, w in sizes)
        inputs = torch.zeros(len(sizes), 3, pad_h, pad_w)
        samples = []
        for i, ((h, w), n) in enumerate(zip(sizes, num_gts)):
            inputs[i, :, :h, :w] = torch.randn(3, h, w, generator=gen)
            xy = torch.rand(n, 2, generator=gen) * torch.tensor([w * 0.6, h * 0.6])
            wh = (torch.rand(n, 2, generator=gen) * 0.35 + 0.05) * torch.tensor([w, h])
            sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), batch_input_shape=(pad_h, pad_w),
                                                 scale_factor=(1.0, 1.0), pad_shape=(pad_h, pad_w)))
            sample.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], 1),
                                               labels=torch.randint(0, num_classes, (n, ), generator=gen))
            samples.append(sample)
        return inputs, samples

    return make
