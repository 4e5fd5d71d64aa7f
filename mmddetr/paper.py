"""The paper's training claims in miniature on the toy data (tools/paper_tables.py): Table 1's convergence (mmdet's
DETR against our single-scale, multi-scale, + refinement and ++ two-stage Deformable DETR) and Table 2's ablations.

Every model is a toy config with config overrides (:data:`MODELS`), all on the main job's recipe (half-width
ResNet-18 from scratch, 384 px, batch 4, EMA). A run is one model, one seed and one number of training images, in its
own work dir ``<root>/<key>_seed<S>_<N>img`` (:func:`run_dir`): ``run.json`` there says what it trains (written when it
starts), ``result.json`` that its training ended. A run with ``result.json`` is never trained again; one without it
resumes from its newest checkpoint. What a run measured is read back from its mmengine logs (``scalars.json`` of every
session, :func:`mmddetr.engine.read_scalars`), so an unfinished run's validations count too, marked as such.
"""
import json
import os
import os.path as osp
import platform
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

MAIN = 'configs/toy/deformable_detr_r18_toy_refine_twostage.py'
SINGLE_SCALE = 'configs/toy/deformable_detr_r18_toy_single_scale.py'
PLAIN = {'model.with_box_refine': False, 'model.as_two_stage': False}  # the main config without its two extensions
ONE_POINT = {'model.encoder.layer_cfg.self_attn_cfg.num_points': 1,
             'model.decoder.layer_cfg.cross_attn_cfg.num_points': 1}


class Model(NamedTuple):
    """A trained model of the tables: ``config`` with ``options`` (``--cfg-options`` keys and values)."""
    key: str
    name: str
    config: str
    options: Dict[str, object]


MODELS = {m.key: m for m in (
    Model('single_scale', 'Deformable DETR single-scale', SINGLE_SCALE, {}),
    Model('multi_scale', 'Deformable DETR', MAIN, PLAIN),
    Model('refine', '+ iterative box refinement', MAIN, {'model.as_two_stage': False}),
    Model('two_stage', '++ two-stage', MAIN, {}),
    Model('single_scale_k1', 'single-scale, K = 1', SINGLE_SCALE, ONE_POINT),
    Model('multi_scale_k1', 'multi-scale, K = 1', MAIN, {**PLAIN, **ONE_POINT}),
    Model('fpn', 'multi-scale + FPN', 'configs/toy/deformable_detr_r18_toy_fpn.py', {}),
    Model('detr', 'DETR (mmdet)', 'configs/toy/detr_r18_toy.py', {}),
)}
DETR = 'detr'
CONVERGING = ('single_scale', 'multi_scale', 'refine', 'two_stage')  # set against DETR's final mAP

# (name, key in mmengine's CocoMetric results); the paper's figures below are in this order
METRICS = (('mAP', 'coco/bbox_mAP'), ('APs', 'coco/bbox_mAP_s'), ('APm', 'coco/bbox_mAP_m'),
           ('APl', 'coco/bbox_mAP_l'))


class PaperRow(NamedTuple):
    """A row of the paper's Table 1: ``key`` of our model, the paper's name, epochs and COCO val AP, APs, APm, APl."""
    key: str
    name: str
    epochs: int
    figures: Tuple[float, float, float, float]


TABLE1 = (PaperRow('detr', 'DETR', 500, (42.0, 20.5, 45.8, 61.1)),
          PaperRow('single_scale', 'Deformable DETR single-scale (official README)', 50, (39.4, 20.6, 43.0, 55.5)),
          PaperRow('multi_scale', 'Deformable DETR', 50, (43.8, 26.4, 47.1, 58.0)),
          PaperRow('refine', '+ iterative bounding box refinement', 50, (45.4, 26.8, 48.3, 61.7)),
          PaperRow('two_stage', '++ two-stage Deformable DETR', 50, (46.2, 28.8, 49.2, 61.7)))
# DETR at the Deformable DETR's budget: the paper has no DETR at 50 epochs, only DETR-DC5 (Table 1)
DETR_DC5_50 = PaperRow('detr', 'DETR-DC5, 50 epochs', 50, (35.3, 15.2, 37.5, 53.6))


class AblationRow(NamedTuple):
    """A row of the paper's Table 2 (None: a row of ours the paper does not have) and our model for it (None: not
    run, ``why``)."""
    ms_inputs: bool
    ms_attention: bool
    points: int
    fpn: str
    figures: Optional[Tuple[float, float, float, float]]
    key: Optional[str]
    why: str = ''


LEVELWISE = ('needs each query to attend to its own level only, which no config of our attention expresses (a new '
             'code path)')
TABLE2 = (AblationRow(False, False, 1, 'w/o', (39.7, 21.2, 44.3, 56.0), 'single_scale_k1'),
          AblationRow(True, False, 1, 'w/o', (41.4, 24.1, 44.6, 56.1), None, LEVELWISE),
          AblationRow(True, False, 4, 'w/o', (42.3, 24.8, 45.1, 56.3), None, LEVELWISE),
          AblationRow(True, True, 4, 'w/o', (43.8, 26.4, 47.1, 58.0), 'multi_scale'),
          AblationRow(True, True, 4, 'FPN', (43.8, 26.5, 47.3, 58.1), 'fpn'),
          AblationRow(True, True, 4, 'BiFPN', (43.9, 25.6, 47.4, 57.7), None, 'mmdet 3.3.0 has no BiFPN neck'),
          AblationRow(False, False, 4, 'w/o', None, 'single_scale'),
          AblationRow(True, True, 1, 'w/o', None, 'multi_scale_k1'))

HIGHER, NOT_HIGHER = 'higher', 'not higher'


class Claim(NamedTuple):
    """The paper says model ``a`` is ``expect`` than ``b`` in ``metric``; each at ``'budget'`` (the Deformable DETR
    runs' images) or ``'final'`` (its own run's images: DETR's longer run)."""
    text: str
    paper: str
    a: Tuple[str, str]
    b: Tuple[str, str]
    metric: str
    expect: str = HIGHER


TABLE1_CLAIMS = (
    Claim('Deformable DETR above DETR at equal training images', '43.8 against DETR-DC5\'s 35.3, both 50 epochs',
          ('multi_scale', 'budget'), (DETR, 'budget'), 'mAP'),
    Claim('Deformable DETR at least DETR\'s final mAP with fewer images', '43.8 at 50 epochs, DETR 42.0 at 500',
          ('multi_scale', 'budget'), (DETR, 'final'), 'mAP'),
    Claim('small objects: Deformable DETR above DETR\'s final APs', '26.4 against 20.5', ('multi_scale', 'budget'),
          (DETR, 'final'), 'APs'),
    Claim('large objects: DETR\'s final APl above Deformable DETR\'s', '61.1 against 58.0', (DETR, 'final'),
          ('multi_scale', 'budget'), 'APl'),
    Claim('multi-scale above single-scale', '43.8 against 39.4', ('multi_scale', 'budget'),
          ('single_scale', 'budget'), 'mAP'),
    Claim('+ iterative box refinement above plain', '45.4 against 43.8', ('refine', 'budget'),
          ('multi_scale', 'budget'), 'mAP'),
    Claim('++ two-stage above + refinement', '46.2 against 45.4', ('two_stage', 'budget'), ('refine', 'budget'),
          'mAP'))
TABLE2_CLAIMS = (
    Claim('multi-scale inputs and attention (K = 4) above single-scale (K = 1)', '43.8 against 39.7',
          ('multi_scale', 'budget'), ('single_scale_k1', 'budget'), 'mAP'),
    Claim('small objects: the same', '26.4 against 21.2', ('multi_scale', 'budget'), ('single_scale_k1', 'budget'),
          'APs'),
    Claim('an FPN adds nothing', '43.8 with and without', ('fpn', 'budget'), ('multi_scale', 'budget'), 'mAP',
          NOT_HIGHER),
    Claim('K = 4 above K = 1, single-scale', 'with multi-scale inputs and single-scale attention: 42.3 against 41.4',
          ('single_scale', 'budget'), ('single_scale_k1', 'budget'), 'mAP'),
    Claim('K = 4 above K = 1, multi-scale attention', 'not in the paper', ('multi_scale', 'budget'),
          ('multi_scale_k1', 'budget'), 'mAP'))

# --quick: the toy dataset this small, made under the work dir, and each run this short
QUICK_DATA = dict(num_train=16, num_val=8, size=96)
QUICK_BUDGET = dict(images=8, detr_images=12, val_every=4)
MARKER = '<!-- generated by tools/paper_tables.py, which rewrites this page and its PNG -->'


def run_dir(root: str, key: str, seed: int, images: int) -> str:
    """The work dir of a run."""
    return osp.join(root, f'{key}_seed{seed}_{images}img')


def quick_options(data_root: str) -> Dict[str, object]:
    """``--cfg-options`` of a --quick run: the tiny toy data at ``data_root``, batch 2 (val 4), no data workers,
    1 + 1 transformer layers, a log line every iteration."""
    options = {'model.encoder.num_layers': 1, 'model.decoder.num_layers': 1, 'default_hooks.logger.interval': 1}
    for split in ('train', 'val', 'test'):
        options.update({f'{split}_dataloader.dataset.data_root': data_root, f'{split}_dataloader.num_workers': 0,
                        f'{split}_dataloader.persistent_workers': False,
                        f'{split}_dataloader.batch_size': 2 if split == 'train' else 4})
    for split in ('val', 'test'):
        options[f'{split}_evaluator.ann_file'] = osp.join(data_root, 'annotations', 'instances_val.json')
    return options


def machine() -> str:
    """This machine in words: CPU, cores, torch and its threads."""
    import torch
    cpu = platform.processor() or platform.machine()
    if osp.exists('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            cpu = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), cpu)
    gpu = f', {torch.cuda.get_device_name()}' if torch.cuda.is_available() else ''
    return f'{cpu}, {os.cpu_count()} cores{gpu}, torch {torch.__version__} on {torch.get_num_threads()} threads'


def _write_json(path: str, data: dict) -> None:
    """``data`` to ``path`` through a temporary file, so that a kill never leaves half a file."""
    with open(path + '.tmp', 'w') as f:
        json.dump(data, f, indent=1)
    os.replace(path + '.tmp', path)


def train(model: Model, seed: int, images: int, val_every: int, work_dir: str,
          options: Optional[Dict[str, object]] = None) -> Optional[str]:
    """Train one run in ``work_dir`` (resumed from its newest checkpoint when it has one) and write its
    ``result.json``. ``options``: more ``--cfg-options`` (after the model's). Returns the checkpoint it resumed
    from, or None."""
    from mmddetr.engine import (build_runner, latest_checkpoint, load_config, mmengine_checkpoint_loader,
                                set_training_images)
    cfg = load_config(model.config, {**model.options, **(options or {}), 'randomness.seed': seed}, work_dir)
    iterations = set_training_images(cfg, images, val_every)
    resume = latest_checkpoint(work_dir)
    cfg.load_from, cfg.resume = resume, resume is not None
    cfg.experiment_name = osp.basename(osp.normpath(work_dir))
    cfg.visualizer.pop('name', None)  # named after the experiment: an earlier run's visualizer would log this one's
    os.makedirs(work_dir, exist_ok=True)
    info = dict(model=model.key, config=model.config, options=model.options, more_options=options or {}, seed=seed,
                images=images, batch_size=cfg.train_dataloader.batch_size, iterations=iterations,
                started=time.strftime('%Y-%m-%d %H:%M'), machine=machine())
    if resume is not None:  # the run's first start
        with open(osp.join(work_dir, 'run.json')) as f:
            info['started'] = json.load(f)['started']
    _write_json(osp.join(work_dir, 'run.json'), info)
    runner = build_runner(cfg)
    with mmengine_checkpoint_loader():
        runner.train()
    _write_json(osp.join(work_dir, 'result.json'), dict(iterations=runner.iter, finished=time.strftime(
        '%Y-%m-%d %H:%M'), machine=machine()))
    return resume


class Run(NamedTuple):
    """What one run's work dir holds: ``history`` {training images: {metric name: value}} at every validation,
    ``trained`` (images), ``minutes`` of training (from the logs), ``info`` (run.json), ``finished`` (result.json's
    time, None while unfinished)."""
    history: Dict[int, Dict[str, float]]
    trained: int
    minutes: float
    info: dict
    finished: Optional[str]


def read_run(work_dir: str) -> Optional[Run]:
    """The run in ``work_dir`` as its files and logs say, None if it never started."""
    from mmddetr.engine import read_scalars, training_seconds, work_dir_scalars
    if not osp.exists(osp.join(work_dir, 'run.json')):
        return None
    with open(osp.join(work_dir, 'run.json')) as f:
        info = json.load(f)
    finished = None
    if osp.exists(osp.join(work_dir, 'result.json')):
        with open(osp.join(work_dir, 'result.json')) as f:
            finished = json.load(f)['finished']
    train, val = read_scalars(work_dir_scalars(work_dir))
    batch = info['batch_size']
    history = {record['step'] * batch: {name: record[key] for name, key in METRICS if key in record}
               for record in val}
    return Run(history, train[-1]['iter'] * batch if train else 0, training_seconds(train) / 60, info, finished)


class Budget(NamedTuple):
    """What a page was asked to show: images per Deformable DETR run and per DETR run, validations, seeds."""
    images: int
    detr_images: int
    val_every: int
    seeds: Tuple[int, ...]

    def images_of(self, key: str) -> int:
        return self.detr_images if key == DETR else self.images


def planned_runs(keys: Sequence[str], budget: Budget) -> List[Tuple[Model, int, int]]:
    """(model, seed, images) of every run of ``keys``, seed by seed (a first seed of every model before a second),
    DETR's long run last within a seed."""
    ordered = [key for key in MODELS if key in keys and key != DETR] + [DETR] * (DETR in keys)
    return [(MODELS[key], seed, budget.images_of(key)) for seed in budget.seeds for key in ordered]


class Results:
    """The runs under ``root`` that a page of ``budget`` shows: per model and seed, the run of its images."""

    def __init__(self, root: str, budget: Budget):
        self.root, self.budget = root, budget
        self.runs = {(key, seed): read_run(run_dir(root, key, seed, budget.images_of(key)))
                     for key in MODELS for seed in budget.seeds}

    def seeds_of(self, key: str) -> Dict[int, Run]:
        return {seed: run for (k, seed), run in self.runs.items() if k == key and run is not None}

    def at(self, key: str, images: int, metric: str) -> List[float]:
        """The metric after ``images`` training images in every seed's run that got there (-1, COCO's "no such
        objects", left out)."""
        values = [run.history[images].get(metric, -1) for run in self.seeds_of(key).values() if images in run.history]
        return [v for v in values if v >= 0]

    def curve(self, key: str, metric: str) -> List[Tuple[int, List[float]]]:
        """(images, :meth:`at`) at every validation of ``key``'s runs that has values."""
        points = sorted(set().union(*(run.history for run in self.seeds_of(key).values())))
        return [(images, values) for images in points if (values := self.at(key, images, metric))]

    def point(self, key: str) -> Optional[int]:
        """The images at which the tables show ``key``: its budget if a seed got there, else the most any got."""
        reached = [max(run.history) for run in self.seeds_of(key).values() if run.history]
        if not reached:
            return None
        asked = self.budget.images_of(key)
        return asked if asked in reached else max(reached)

    def shortfall(self, key: str, images: int, asked: int) -> str:
        """'' when ``images`` is the ``asked`` number and every asked seed has a validation there; else what is
        missing, in words."""
        have = sum(images in run.history for run in self.seeds_of(key).values())
        notes = [f'{have} of {len(self.budget.seeds)} seeds'] if have < len(self.budget.seeds) else []
        if images < asked:
            notes.append(f'{images:,} of {asked:,} images')
        return ', '.join(notes)

    def where(self, key: str, at: str) -> int:
        """The images of a claim's side: ``'budget'``, the Deformable DETR runs' images; ``'final'``, its own."""
        return self.budget.images if at == 'budget' else self.budget.images_of(key)


def cell(values: Sequence[float]) -> str:
    """Mean and, with several seeds, their range: '0.352 (0.341-0.363)'; '-' without values."""
    if not values:
        return '-'
    mean = sum(values) / len(values)
    return f'{mean:.3f}' if len(values) == 1 else f'{mean:.3f} ({min(values):.3f}-{max(values):.3f})'


def judge(a: Sequence[float], b: Sequence[float], expect: str) -> str:
    """The verdict on "a is ``expect`` than b" from the seeds' values: a difference counts only where the two ranges
    do not overlap."""
    if not a or not b:
        return 'not measured yet'
    above, below = min(a) > max(b), max(a) < min(b)
    seeds = ' (a single seed: no spread to judge by)' if min(len(a), len(b)) == 1 else ''
    if expect == HIGHER:
        verdict = 'agrees' if above else 'disagrees: lower' if below else 'undecided: the seeds\' ranges overlap'
    else:
        verdict = 'disagrees: higher' if above else 'agrees'
    return verdict + seeds


def convergence(results: Results) -> List[str]:
    """Where each Deformable DETR reached DETR's final mAP, in sentences (the paper: 10x fewer epochs)."""
    final = results.budget.detr_images
    detr = results.at(DETR, final, 'mAP')
    if not detr:
        return [f'- DETR has no validation after its {final:,} images yet: the convergence ratio is not measured.']
    target = sum(detr) / len(detr)
    seeds = f'the mean of {len(detr)} seeds' if len(detr) > 1 else 'one seed'
    lines = [f'- DETR\'s final mAP: {target:.3f} after {final:,} images ({seeds}). The paper: '
             f'Deformable DETR reaches DETR\'s final AP with 10x fewer epochs (43.8 after 50 against 42.0 after 500).']
    if target == 0:
        return lines + ['- DETR has not started to detect (mAP 0): no ratio; train it longer (`--detr-images`).']
    for key in CONVERGING:
        curve = [(images, sum(values) / len(values)) for images, values in results.curve(key, 'mAP')]
        reached = next((images for images, mean in curve if mean >= target), None)
        name = MODELS[key].name
        if reached is not None:
            lines.append(f'- {name}: reached it after {reached:,} images, {final / reached:.1f}x fewer than DETR.')
        elif curve:
            lines.append(f'- {name}: did not reach it within {curve[-1][0]:,} images (mAP {curve[-1][1]:.3f} there).')
    return lines


def claims(results: Results, table: Sequence[Claim]) -> List[str]:
    """A Markdown list: each claim, the paper's figures, ours and the verdict."""
    lines = []
    for claim in table:
        (a, a_at), (b, b_at) = claim.a, claim.b
        a_images, b_images = results.where(a, a_at), results.where(b, b_at)
        va, vb = results.at(a, a_images, claim.metric), results.at(b, b_images, claim.metric)
        lines.append(f'- {claim.text} (paper: {claim.paper}); here {MODELS[a].name} after {a_images:,} images: '
                     f'{cell(va)}, {MODELS[b].name} after {b_images:,}: {cell(vb)}: **{judge(va, vb, claim.expect)}**')
    return lines


def _ours(results: Results, key: str, images: Optional[int], asked: int) -> List[str]:
    """Table cells of ``key`` after ``images`` (None: no validation): images, the metrics, seeds, what is short of
    ``asked`` images on every asked seed."""
    if images is None:
        return ['-'] * (len(METRICS) + 2) + ['not run']
    return [f'{images:,}'] + [cell(results.at(key, images, name)) for name, _ in METRICS] + [
        str(len(results.at(key, images, 'mAP'))), results.shortfall(key, images, asked)]


def _paper(figures: Optional[Sequence[float]]) -> List[str]:
    return [f'{x:.1f}' for x in figures] if figures else ['-'] * len(METRICS)


def plot_curves(results: Results, out_file: str) -> None:
    """mAP, APs, APm and APl against training images (log scale) of every model with a validation: the mean over
    seeds, the seeds' range shaded."""
    from matplotlib.figure import Figure  # no pyplot: nothing global of matplotlib's changes
    from matplotlib.ticker import FuncFormatter
    fig = Figure(figsize=(12, 8))
    axes = list(fig.subplots(2, 2).flat)
    for key, model in MODELS.items():
        for ax, (name, _) in zip(axes, METRICS):
            rows = results.curve(key, name)
            if not rows:
                continue
            x = [images for images, _ in rows]
            ax.plot(x, [sum(v) / len(v) for _, v in rows], 'o-' if key != DETR else 's--', label=model.name)
            ax.fill_between(x, [min(v) for _, v in rows], [max(v) for _, v in rows], alpha=0.2)
    for ax, (name, _) in zip(axes, METRICS):
        ax.set(xscale='log', xlabel='training images', ylabel=f'toy val {name}', title=name)
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f'{x:,.0f}'))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_file, dpi=90)


def check_outputs(out: str) -> str:
    """The PNG path beside page ``out`` (``<out stem>_curves.png``) after checking that writing both overwrites
    nothing but this tool's own page and PNG. Raises ValueError naming the file otherwise."""
    png = osp.splitext(out)[0] + '_curves.png'
    ours = False
    if osp.isfile(out):
        with open(out, 'rb') as f:
            ours = f.readline().strip() == MARKER.encode()
    if osp.exists(out) and not ours:
        raise ValueError(f'--out {out} exists and is not a page this tool wrote; nothing is overwritten: choose '
                         f'another --out')
    if osp.exists(png) and not ours:
        raise ValueError(f'--out {out}: its curves would go to {png}, which exists and is not this tool\'s; nothing '
                         f'is overwritten: choose another --out')
    return png


RECIPE = ('Every model trains from scratch on the toy data (data/toy: 2,000 training and 200 val images of 256 px, '
          'five shape classes, objects of 8 to ~128 px) with the main job\'s recipe '
          '(configs/toy/deformable_detr_r18_toy_refine_twostage.py): the same half-width ResNet-18, images upscaled '
          'to 384 px, batch 4, AdamW 5e-4 with x0.1 for the last sixth of each run, clip 0.1, an EMA of the weights '
          'for validation, embed dims 128, 3 + 3 layers, 100 queries, no dropout; a validation on the toy val set '
          'every {val_every:,} training images. DETR is mmdet 3.3.0\'s (configs/toy/detr_r18_toy.py: its classes, '
          'cross-entropy loss and matching costs, C5 only) on the same recipe. COCO\'s size ranges apply to the '
          '256 px originals: small < 32 px, medium 32-96 px, large > 96 px. Cells: the mean over seeds and, with '
          'more than one, their range.')


def write_page(results: Results, out: str, png: str, commands: Sequence[str], quick: bool = False) -> None:
    """The Markdown page ``out`` and its curves ``png`` (after :func:`check_outputs`): both tables beside the paper's
    figures, the claims judged, the learning curves, every run and the commands."""
    budget, images = results.budget, results.budget.images
    paper, ours = ' | '.join(['AP'] + [n for n, _ in METRICS[1:]]), ' | '.join(n for n, _ in METRICS)
    lines = [MARKER, '# The paper\'s training claims in miniature', '']
    if quick:
        lines += ['**Quick mode** (`--quick`): a tiny dataset and a few iterations per run, for testing the tool; the '
                  'figures mean nothing.', '']
    lines += [RECIPE.format(val_every=budget.val_every), '',
              f'Asked: {images:,} training images per Deformable DETR run, {budget.detr_images:,} per DETR run, '
              f'seeds {", ".join(map(str, budget.seeds))}. A row that has fewer says so.', '',
              '## Table 1 in miniature: convergence', '',
              f'| paper: model | epochs | {paper} | toy: model | images | {ours} | seeds | short of the asked |',
              '|---|---:|' + '---:|' * len(METRICS) + '---|' + '---:|' * (len(METRICS) + 2) + '---|']
    detr_at_budget = images if results.at(DETR, images, 'mAP') else None
    for row in (TABLE1[0], DETR_DC5_50) + TABLE1[1:]:
        name, at, asked = MODELS[row.key].name, results.point(row.key), budget.images_of(row.key)
        if row is DETR_DC5_50:
            name, at, asked = f'{name}, at the Deformable DETR\'s images', detr_at_budget, images
        lines.append('| ' + ' | '.join([row.name, str(row.epochs)] + _paper(row.figures) + [name] + _ours(
            results, row.key, at, asked)) + ' |')
    lines += ['', *convergence(results), '', *claims(results, TABLE1_CLAIMS), '',
              '## Learning curves', '', f'![learning curves]({osp.basename(png)})', '',
              'mAP after each validation (training images in rows):', '',
              '| images | ' + ' | '.join(m.name for m in MODELS.values()) + ' |', '|---:|' + '---:|' * len(MODELS)]
    points = sorted(set().union(*(run.history for run in results.runs.values() if run is not None)))
    lines += [f'| {at:,} | ' + ' | '.join(cell(results.at(key, at, 'mAP')) for key in MODELS) + ' |' for at in points]
    lines += ['', '## Table 2 in miniature: the deformable attention\'s ablations', '',
              f'At {images:,} training images each; rows without the paper\'s figures are ours alone.', '',
              f'| MS inputs | MS attention | K | FPN | paper: {paper} | toy: model | images | {ours} | seeds | '
              f'short of the asked |', '|---|---|---:|---|' + '---:|' * len(METRICS) + '---|' + '---:|' * (
                  len(METRICS) + 2) + '---|']
    for row in TABLE2:
        flags = ['yes' if row.ms_inputs else 'no', 'yes' if row.ms_attention else 'no', str(row.points), row.fpn]
        ours_cells = (['not run'] + ['-'] * (len(METRICS) + 2) + [row.why] if row.key is None else
                      [MODELS[row.key].name] + _ours(results, row.key, results.point(row.key), images))
        lines.append('| ' + ' | '.join(flags + _paper(row.figures) + ours_cells) + ' |')
    lines += ['', *claims(results, TABLE2_CLAIMS), '', '## Runs', '',
              '| run | config | options | trained images | training minutes | started | finished | machine |',
              '|---|---|---|---:|---:|---|---|---|']
    for (key, seed), run in results.runs.items():
        if run is not None:
            options = ' '.join(f'{k}={v}' for k, v in run.info['options'].items()) or '-'
            lines.append(f'| {key}, seed {seed} | {run.info["config"]} | {options} | {run.trained:,} of '
                         f'{run.info["images"]:,} | {run.minutes:.1f} | {run.info["started"]} | '
                         f'{run.finished or "not yet"} | {run.info["machine"]} |')
    lines += ['', 'Training minutes: from the runs\' logs (each logged iteration time times the iterations since the '
              'last log), validation not included.', '', '## Commands', '',
              'Every command of the tool on these runs, with its date:', '', '```', *commands, '```', '',
              f'Page written {time.strftime("%Y-%m-%d %H:%M")} on {machine()}.', '']
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    plot_curves(results, png)
    with open(out, 'w') as f:
        f.write('\n'.join(lines))


def log_command(root: str, command: str) -> List[str]:
    """Append ``command`` with the date to ``root/commands.txt``; returns every command logged there."""
    os.makedirs(root, exist_ok=True)
    path = osp.join(root, 'commands.txt')
    with open(path, 'a') as f:
        f.write(f'{time.strftime("%Y-%m-%d %H:%M")}  {command}\n')
    with open(path) as f:
        return f.read().splitlines()

