"""Per-step cost of AD generation: the KV-cache vs re-encoding the same context at every step.

    PYTHONPATH=. python benchmarks/ad_kv_cache.py [--context-len 256] [--batch 23] [--steps 512] [--device cpu]

Both paths give the next action's logits over the same context: the transitions from the cache's anchor
on (``rlcli.nets.ad_transformer``: between ``keep + 1`` and ``context_len`` transitions, re-anchored when
full). The cached step feeds s_t, then a_t and r_t, re-encoding ``keep`` transitions once per
``context_len - keep`` steps; the uncached step runs a plain forward over the whole context. The script
checks that the two agree (largest difference of action probabilities) and prints both per-step times and
their ratio, over ``--steps`` steps of a stream that starts empty (so it covers filling and re-anchoring).
"""

from __future__ import annotations

import argparse
import time

import torch

from rlcli.nets.ad_transformer import ADModelConfig, ADTransformer


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--context-len", type=int, default=256)
    p.add_argument("--keep", type=int, default=None, help="transitions kept at re-anchoring (default 3/4)")
    p.add_argument("--batch", type=int, default=23)
    p.add_argument("--steps", type=int, default=512)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    k = args.context_len
    model = ADTransformer(ADModelConfig(81, 5, 20, context_len=k)).to(dev).eval()  # the seed's sizes
    b, t = args.batch, args.steps
    s, a = torch.randint(0, 81, (b, t), device=dev), torch.randint(0, 5, (b, t), device=dev)
    r, ts = torch.randint(0, 2, (b, t), device=dev), torch.randint(0, 20, (b, t), device=dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    with torch.no_grad():
        cache = model.new_cache(args.keep)
        starts, cached_probs = [], []
        sync()
        t0 = time.perf_counter()
        for i in range(t):
            cached_probs.append(torch.softmax(model.step_state(s[:, i], ts[:, i], cache), -1))
            starts.append(cache.start)
            model.step_outcome(a[:, i], r[:, i], ts[:, i], cache)
        sync()
        cached = (time.perf_counter() - t0) / t
        worst = 0.0
        t0 = time.perf_counter()
        for i in range(t):
            lo = starts[i]
            logits = model(s[:, lo:i + 1], a[:, lo:i + 1], r[:, lo:i + 1], ts[:, lo:i + 1])[:, -1]
            worst = max(worst, float((torch.softmax(logits, -1) - cached_probs[i]).abs().max()))
        sync()
        uncached = (time.perf_counter() - t0) / t
    print(f"context {k} transitions (keep {cache.keep}), batch {b}, {t} steps, device {dev}: cached "
          f"{cached * 1e3:.2f} ms/step, re-encoding the same context {uncached * 1e3:.2f} ms/step, ratio "
          f"{uncached / cached:.1f}x; largest probability difference {worst:.1e}")


if __name__ == "__main__":
    main()
