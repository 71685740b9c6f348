"""``python -m rlcli ...``: the CLI, so ``torchrun --nproc-per-node N -m rlcli train ppo ...`` works."""

from rlcli.cli.main import main

if __name__ == "__main__":
    main()
