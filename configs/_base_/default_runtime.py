# Runtime shared by all configs: our registries first, mmdet's and mmengine's through them.
default_scope = 'mmddetr'
custom_imports = dict(imports=['mmddetr'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # atomic writes (mmddetr.engine.AtomicLocalBackend): a kill while saving never leaves a truncated checkpoint
    checkpoint=dict(type='CheckpointHook', interval=1, backend_args=dict(backend='atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'),
    # a NaN or inf loss term (or matching cost) stops training before the weights are touched, naming the iteration
    # and the terms; action='skip' skips such steps with a warning instead (mmddetr.engine.NonFiniteLossHook)
    nonfinite_loss=dict(type='NonFiniteLossHook', action='raise'),
    # load_from / resume: a checkpoint missing weights of the model stops the run, naming them (mmengine would only
    # log them); allow_missing=True loads it partially (mmddetr.engine.CheckpointWeightsHook). Weights of another
    # shape (a head for another class count) are skipped and logged, as in mmengine.
    checkpoint_weights=dict(type='CheckpointWeightsHook', allow_missing=False))

# RNG states travel with the checkpoints: a resumed run continues exactly as the uninterrupted one would.
# NumClassCheckHook (mmdet's): the head's num_classes must equal the number of dataset classes, before training and
# validation start.
custom_hooks = [dict(type='RNGStateHook'), dict(type='NumClassCheckHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)

log_level = 'INFO'
load_from = None
resume = False
