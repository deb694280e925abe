"""``python -m equireg_lit.weights snapshot <checkpoint.ckpt> <out_dir>``: see ``export_training_snapshot``."""

import sys

from equireg_lit.weights import export_training_snapshot

if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "snapshot":
        sys.exit("usage: python -m equireg_lit.weights snapshot <checkpoint.ckpt> <out_dir>")
    print(export_training_snapshot(sys.argv[2], sys.argv[3]))
