"""Per-step cost of AD generation at a full context: rolling KV-cache vs re-encoding the window.

    PYTHONPATH=. python benchmarks/ad_kv_cache.py [--context-len 256] [--batch 23] [--device cpu]

Both paths produce the next action's logits for a batch of streams whose context is full (768 tokens with
the seed's 256 transitions). The cached step feeds 3 new tokens (a_{t-1}, r_{t-1}, s_t) and attends over the
cache; the uncached step re-encodes the last window. Prints both per-step times and their ratio.
"""

from __future__ import annotations

import argparse
import time

import torch

from rlcli.nets.ad_transformer import ADModelConfig, ADTransformer


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--context-len", type=int, default=256)
    p.add_argument("--batch", type=int, default=23)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    k = args.context_len
    model = ADTransformer(ADModelConfig(81, 5, 20, context_len=k)).to(dev).eval()  # the seed's sizes
    b, t = args.batch, k + args.steps
    s, a = torch.randint(0, 81, (b, t), device=dev), torch.randint(0, 5, (b, t), device=dev)
    r, ts = torch.randint(0, 2, (b, t), device=dev), torch.randint(0, 20, (b, t), device=dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    with torch.no_grad():
        cache = model.new_cache()
        for i in range(k):  # fill the context
            model.step_state(s[:, i], ts[:, i], cache)
            model.step_outcome(a[:, i], r[:, i], ts[:, i], cache)
        sync()
        t0 = time.perf_counter()
        for i in range(k, t):
            model.step_state(s[:, i], ts[:, i], cache)
            model.step_outcome(a[:, i], r[:, i], ts[:, i], cache)
        sync()
        cached = (time.perf_counter() - t0) / args.steps
        t0 = time.perf_counter()
        for i in range(k, t):
            lo = i + 1 - k
            model(s[:, lo:i + 1], a[:, lo:i + 1], r[:, lo:i + 1], ts[:, lo:i + 1])
        sync()
        uncached = (time.perf_counter() - t0) / args.steps
    print(f"context {3 * k} tokens, batch {b}, device {dev}: cached {cached * 1e3:.2f} ms/step, "
          f"re-encoding {uncached * 1e3:.2f} ms/step, ratio {uncached / cached:.1f}x")


if __name__ == "__main__":
    main()
