"""Forward+backward throughput of the RND policies: vit-explorative vs the RND paper's cnn.

    PYTHONPATH=. python benchmarks/policy_throughput.py [--batches 256 2048] [--reps 3] [--threads 1]

For each batch size, times ``reps`` passes of heads(obs) -> (sum of logits and both values).backward() on
random (B, 4, 84, 84) uint8 frames (after one untimed warm-up pass) and prints samples/s side by side with
the vit/cnn ratio. The ViT uses the presets' size (patch 12, dim 128, depth 2, 4 heads, MLP 256).
"""

from __future__ import annotations

import argparse
import time

import torch

from rlcli.nets.cnn_rnd import RNDCNNActorCritic
from rlcli.nets.vit_explorative import ExplorativeViT


def throughput(net: torch.nn.Module, batch: int, reps: int, device: torch.device) -> float:
    """Samples per second of forward + backward at ``batch``."""
    obs = torch.randint(0, 256, (batch, 4, 84, 84), dtype=torch.uint8, device=device)

    def one_pass() -> None:
        net.zero_grad(set_to_none=True)
        logits, ext_value, int_value = net.heads(obs)
        (logits.sum() + ext_value.sum() + int_value.sum()).backward()

    one_pass()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        one_pass()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * reps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 2048])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    nets = {"vit-explorative": ExplorativeViT((4, 84, 84), 18).to(device),
            "cnn": RNDCNNActorCritic((4, 84, 84), 18).to(device)}
    for name, net in nets.items():
        print(f"{name}: {sum(p.numel() for p in net.parameters()):,} parameters")
    print(f"device {device}, {args.threads} thread(s), {args.reps} timed passes; samples/s of forward+backward")
    print(f"{'batch':>6} {'vit-explorative':>16} {'cnn':>10} {'vit/cnn':>8}")
    for batch in args.batches:
        vit = throughput(nets["vit-explorative"], batch, args.reps, device)
        cnn = throughput(nets["cnn"], batch, args.reps, device)
        print(f"{batch:>6} {vit:>16.0f} {cnn:>10.0f} {vit / cnn:>8.2f}")


if __name__ == "__main__":
    main()
