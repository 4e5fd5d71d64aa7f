"""Make the procedural toy shapes dataset (COCO format) used by configs/toy/.

    python tools/make_toy_dataset.py [--root data/toy] [--num-train 2000] [--num-val 200] [--size 256] [--seed 0]

The toy configs make it on first use anyway; this is for making it ahead of time or with other sizes.
"""
import argparse

from mmddetr.datasets import make_toy_dataset


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', default='data/toy', help='output folder (a split already there is kept)')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=200)
    parser.add_argument('--size', type=int, default=256, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    for name in ('num_train', 'num_val', 'size'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be positive, got {getattr(args, name)}')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    make_toy_dataset(args.root, num_train=args.num_train, num_val=args.num_val, size=args.size, seed=args.seed)
    print(f'toy dataset at {args.root}: annotations/instances_{{train,val}}.json, train/, val/')


if __name__ == '__main__':
    main()
