#!/usr/bin/env python3
"""Synthetic sharded bf16 checkpoint with Llama-3-8B shapes and fewer layers (scale benchmark input).

hidden 4096, intermediate 14336, 32 heads / 8 kv heads (head_dim 128), vocab 128256, untied
embeddings; 9 layers by default (about 6.1 GB: the embedding and lm_head are 1.05 GB each, a layer
is 436 MB). Values are random normal * 0.02 (torch.manual_seed(0)); the content does not matter for
the benchmark, only shapes, dtype and sharding. Shards are cut at --max-shard-size like
save_pretrained, with model.safetensors.index.json.

Run with /work/venv/bin/python (torch 2.15.0, safetensors 0.8.0). Not committed: writes to OUT.
"""
import argparse, json, os, time
import torch
from safetensors.torch import save_file

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--layers", type=int, default=9)
p.add_argument("--max-shard-size", type=float, default=2e9)
a = p.parse_args()

H, I, NH, NKV, V, HD = 4096, 14336, 32, 8, 128256, 128
torch.manual_seed(0)

def tensors():
    yield "model.embed_tokens.weight", (V, H)
    for l in range(a.layers):
        pre = f"model.layers.{l}."
        yield pre + "input_layernorm.weight", (H,)
        yield pre + "self_attn.q_proj.weight", (NH * HD, H)
        yield pre + "self_attn.k_proj.weight", (NKV * HD, H)
        yield pre + "self_attn.v_proj.weight", (NKV * HD, H)
        yield pre + "self_attn.o_proj.weight", (H, NH * HD)
        yield pre + "post_attention_layernorm.weight", (H,)
        yield pre + "mlp.gate_proj.weight", (I, H)
        yield pre + "mlp.up_proj.weight", (I, H)
        yield pre + "mlp.down_proj.weight", (H, I)
    yield "model.norm.weight", (H,)
    yield "lm_head.weight", (V, H)

os.makedirs(a.out, exist_ok=True)
t0 = time.time()
shards, cur, cur_size = [], {}, 0
def flush():
    global cur, cur_size
    if cur:
        shards.append(cur)
    cur, cur_size = {}, 0

# Plan shards by size first (as huggingface_hub does), then write one shard at a time.
plan, cur_names, size = [], [], 0
for name, shape in tensors():
    n = 2
    for d in shape: n *= d
    if size + n > a.max_shard_size and cur_names:
        plan.append(cur_names); cur_names, size = [], 0
    cur_names.append((name, shape)); size += n
plan.append(cur_names)

weight_map, total = {}, 0
for k, names in enumerate(plan):
    fname = f"model-{k + 1:05d}-of-{len(plan):05d}.safetensors"
    sd = {}
    for name, shape in names:
        if len(shape) == 1:
            sd[name] = torch.ones(shape, dtype=torch.bfloat16)
        else:
            sd[name] = (torch.randn(shape, dtype=torch.float32) * 0.02).to(torch.bfloat16)
        weight_map[name] = fname
        total += sd[name].numel() * 2
    save_file(sd, os.path.join(a.out, fname), metadata={"format": "pt"})
    del sd
    print(f"wrote {fname} ({len(names)} tensors) at {time.time() - t0:.1f} s", flush=True)

with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
config = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H, "intermediate_size": I,
    "num_attention_heads": NH, "num_key_value_heads": NKV, "head_dim": HD, "num_hidden_layers": a.layers,
    "vocab_size": V, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
    "hidden_act": "silu", "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False,
    "bos_token_id": 128000, "eos_token_id": 128001, "torch_dtype": "bfloat16",
}
with open(os.path.join(a.out, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
# Direction for a full-residual ablation recipe.
d = torch.randn(H, dtype=torch.float32)
save_file({"direction": d / d.norm()}, os.path.join(os.path.dirname(os.path.abspath(a.out)), "direction.safetensors"))
with open(os.path.join(os.path.dirname(os.path.abspath(a.out)), "ablate_residual.json"), "w") as f:
    json.dump({"interventions": [{"op": "ablate", "point": "residual",
                                  "direction": {"file": "direction.safetensors", "tensor": "direction"}}]}, f, indent=2)
print(f"total {total / 1e9:.2f} GB in {len(plan)} shards, {time.time() - t0:.1f} s")
