"""Training snapshots of a ``ScoreModule`` run.

    python -m equireg_lit.weights snapshot <checkpoint.ckpt> <out_dir>
        net + EMA safetensors to continue training from (``export_training_snapshot``)
    python -m equireg_lit.weights ship <checkpoint.ckpt> <out.safetensors> <fit_config.yaml> [<logdir>]
        the EMA as shipped prior weights with provenance (``ship_training_snapshot``)
"""

import sys

from equireg_lit.weights import export_training_snapshot, ship_training_snapshot

if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "snapshot":
        print(export_training_snapshot(args[1], args[2]))
    elif len(args) in (4, 5) and args[0] == "ship":
        prov = ship_training_snapshot(*args[1:])
        print({k: v for k, v in prov.items() if k not in ("config_yaml", "hparams")})
    else:
        sys.exit(__doc__)
