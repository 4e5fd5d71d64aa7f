"""A NaN or inf loss (or matching cost) never reaches the weights: the step raises naming the iteration and the
terms, or is skipped with a warning (nonfinite_loss='skip')."""
import re

import pytest
import torch

TOY = 'configs/toy/deformable_detr_r18_toy_refine_twostage.py'


@pytest.fixture
def iteration_37():
    """mmengine's message hub at iteration 37 of the log (runner.iter 36) while the test runs."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_current_instance()
    hub.update_info('iter', 36)
    yield
    hub.runtime_info.pop('iter')


@pytest.fixture
def toy_training(build_detector, det_batch):
    """Factory: ``make(**model_overrides)`` → (model, optim_wrapper, data) for ``train_step`` on two small images."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    def make(**overrides):
        model = build_detector(TOY, cfg_options={'model.encoder.num_layers': 1, 'model.decoder.num_layers': 2},
                               **overrides)
        optim_wrapper = build_optim_wrapper(model, Config.fromfile(TOY).optim_wrapper)
        inputs, samples = det_batch(sizes=((64, 96), (80, 64)), num_gts=(2, 1), num_classes=5)
        images = [inputs[i, :, :h, :w] for i, (h, w) in enumerate(s.img_shape for s in samples)]
        model.train()
        return model, optim_wrapper, dict(inputs=images, data_samples=samples)

    return make


def _nan_box_loss(model):
    return model.bbox_head.loss_bbox.register_forward_hook(lambda module, args, output: output * float('nan'))


def _state(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _unchanged(model, before, optim_wrapper):
    same = all(torch.equal(p, before[name]) for name, p in model.named_parameters())
    return same and not optim_wrapper.optimizer.state  # AdamW never stepped


def test_nan_loss_raises_naming_iteration_and_terms(toy_training, iteration_37):
    model, optim_wrapper, data = toy_training()
    before = _state(model)
    _nan_box_loss(model)
    terms = 'loss_bbox=nan, d0.loss_bbox=nan, enc_loss_bbox=nan'
    with pytest.raises(FloatingPointError, match=re.escape(
            f"non-finite loss at iteration 37: {terms}; the weights were not updated (model.nonfinite_loss='skip' "
            'skips such steps)')):
        model.train_step(data, optim_wrapper)
    assert _unchanged(model, before, optim_wrapper)


def test_skip_leaves_the_weights_and_training_goes_on(toy_training, iteration_37, logged_warnings):
    model, optim_wrapper, data = toy_training(nonfinite_loss='skip')
    before = _state(model)
    hook = _nan_box_loss(model)
    assert model.train_step(data, optim_wrapper) == {}
    assert _unchanged(model, before, optim_wrapper)
    assert logged_warnings == ['non-finite loss at iteration 37: loss_bbox=nan, d0.loss_bbox=nan, enc_loss_bbox=nan; '
                               "the weights were not updated; step skipped (nonfinite_loss='skip', 1 so far)"]
    hook.remove()
    log_vars = model.train_step(data, optim_wrapper)
    assert all(torch.isfinite(v) for v in log_vars.values()) and 'loss_bbox' in log_vars
    assert not _unchanged(model, before, optim_wrapper)
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize('mode', ['raise', 'skip'])
def test_nonfinite_targets_stop_in_the_assigner_before_the_weights(mode, toy_training, iteration_37,
                                                                   logged_warnings):
    model, optim_wrapper, data = toy_training(nonfinite_loss=mode)
    before = _state(model)
    data['data_samples'][1].gt_instances.bboxes[0, 2] = float('inf')
    message = ("non-finite values in the forward pass at iteration 37: HungarianAssigner: the matching costs "
               "['BBoxL1Cost', 'IoUCost'] have NaN or inf entries")
    if mode == 'raise':
        with pytest.raises(FloatingPointError, match=re.escape(message)):
            model.train_step(data, optim_wrapper)
    else:
        assert model.train_step(data, optim_wrapper) == {}
        assert logged_warnings[0].startswith(message)
    assert _unchanged(model, before, optim_wrapper)


def test_parse_losses_raises_in_either_mode(build_detector):
    # mmengine's DDP wrapper calls parse_losses and then steps the optimizer itself: there a skip is impossible
    for mode in ('raise', 'skip'):
        model = build_detector(TOY, nonfinite_loss=mode)
        loss, log_vars = model.parse_losses(dict(loss_cls=torch.tensor(1.0), loss_bbox=torch.tensor([2.0, 4.0])))
        assert loss.item() == 4.0 and list(log_vars) == ['loss', 'loss_cls', 'loss_bbox']
        with pytest.raises(FloatingPointError, match=r'non-finite loss in a training step: d1.loss_iou=-inf; the '
                                                     r'weights were not updated'):
            model.parse_losses({'loss_cls': torch.tensor(1.0), 'd1.loss_iou': torch.tensor(-float('inf'))})


def test_nonfinite_loss_option_is_checked(build_detector):
    with pytest.raises(ValueError, match="nonfinite_loss must be 'raise' or 'skip', got 'ignore'"):
        build_detector(TOY, nonfinite_loss='ignore')
