"""PyTorch/transformers side of scripts/bench.sh: prefill and decode tokens/s of a HF folder.

    /work/venv/bin/python scripts/bench_torch.py MODEL [--prompt-tokens 128] [--decode-tokens 64]
        [--threads 2] [--runs 3] [--json]

Measures exactly what `edit-cli bench` measures: the same prompt ids ((i * 7919 + 1000) % vocab),
f32, eager attention, greedy; prefill = one forward over the prompt keeping only the last
logits (as generate() does) plus the argmax; decode = the following single-token steps with the
KV cache. Best of --runs after a warm-up. Pinned: torch 2.15.0, transformers 5.25.0.
"""

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    V = model.config.vocab_size
    ids = torch.tensor([[(i * 7919 + 1000) % V for i in range(a.prompt_tokens)]], dtype=torch.long)

    @torch.inference_mode()
    def once():
        t0 = time.perf_counter()
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        nxt = out.logits[0, -1].argmax()
        t1 = time.perf_counter()
        cache = out.past_key_values
        for _ in range(a.decode_tokens):
            out = model(input_ids=nxt.view(1, 1), cache=cache, use_cache=True)
            cache = out.past_key_values
            nxt = out.logits[0, -1].argmax()
        t2 = time.perf_counter()
        return a.prompt_tokens / (t1 - t0), a.decode_tokens / (t2 - t1)

    once()
    best = (0.0, 0.0)
    for _ in range(a.runs):
        p, d = once()
        best = (max(best[0], p), max(best[1], d))
    if a.json:
        print(json.dumps({"threads": a.threads, "prompt_tokens": a.prompt_tokens, "decode_tokens": a.decode_tokens,
                          "prefill_tokens_per_s": round(best[0], 1), "decode_tokens_per_s": round(best[1], 1)}))
    else:
        print(f"threads: {a.threads}\nprefill: {best[0]:.1f} tokens/s\ndecode:  {best[1]:.1f} tokens/s")


if __name__ == "__main__":
    main()
