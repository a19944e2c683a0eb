"""PyTorch reference for the GPT-2 124M benchmark (issue: CUDA backend vs PyTorch).

The same model as galvatron's gpt2-124m (learned positions, LayerNorm, GELU tanh, tied embeddings, vocab
padded to 50304), trained the fast way PyTorch users would: torch.compile, bf16 autocast, SDPA flash
attention, fused AdamW. Prints one JSON line per batch size with the median step time over the timed steps.

usage: python3 bench/torch_gpt2.py --batch 16 64 --seq 1024 --steps 50 [--layers 12 --hidden 768 --heads 12]
       [--recompute]  (full activation recompute per block, torch.utils.checkpoint)

Several GPUs (one process per GPU, started by torchrun, NCCL):
  --mode ddp   DistributedDataParallel: --batch is the batch per GPU, gradients all-reduced in bf16 buckets
  --mode fsdp  FSDP2 (torch.distributed.fsdp.fully_shard per block, then the root): parameters, gradients and
               optimizer state sharded over the GPUs, bf16 compute, fp32 gradient reduction
  e.g. torchrun --standalone --nproc-per-node 2 bench/torch_gpt2.py --mode ddp --batch 16
Rank 0 prints the JSON line; tokens_per_s is the whole job's, peak_mem_gib rank 0's.
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint


class Block(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.H = H
        self.ln_1 = nn.LayerNorm(C)
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C)
        self.c_fc = nn.Linear(C, 4 * C)
        self.mlp_proj = nn.Linear(4 * C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, L, C, H, V, T):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C)
        self.h = nn.ModuleList(Block(C, H) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)
        self.lm_head = nn.Linear(C, V, bias=False)
        self.lm_head.weight = self.wte.weight
        for n, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * L) if n.endswith("c_proj.weight") or n.endswith("mlp_proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            elif n.endswith("bias"):
                nn.init.zeros_(p)

    recompute = False

    def forward(self, idx, targets):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for b in self.h:
            if self.recompute:  # keep only each block's input; its activations are recomputed in backward
                x = torch.utils.checkpoint.checkpoint(b, x, use_reentrant=False)
            else:
                x = b(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps (compilation)")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=50304)
    ap.add_argument("--mode", choices=["single", "ddp", "fsdp"], default="single")
    ap.add_argument("--no-compile", action="store_true", help="eager mode (large models compile slowly)")
    ap.add_argument("--recompute", action="store_true", help="full activation recompute of every block")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    world, rank = 1, 0
    if a.mode != "single":
        import torch.distributed as dist

        dist.init_process_group("nccl")
        world, rank = dist.get_world_size(), dist.get_rank()
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    for B in a.batch:
        torch.manual_seed(0)
        model = GPT(a.layers, a.hidden, a.heads, a.vocab, a.seq)
        model.recompute = a.recompute
        n_params = sum(p.numel() for p in model.parameters())
        if a.mode == "fsdp":
            try:
                from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
            except ImportError:  # torch < 2.6
                from torch.distributed._composable.fsdp import MixedPrecisionPolicy, fully_shard
            mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
            model = model.cuda()
            for blk in model.h:
                fully_shard(blk, mp_policy=mp)
            fully_shard(model, mp_policy=mp)
        else:
            model = model.cuda()
            if a.mode == "ddp":
                from torch.nn.parallel import DistributedDataParallel as DDP

                model = DDP(model, device_ids=[torch.cuda.current_device()], gradient_as_bucket_view=True)
        # FSDP2's parameters are DTensors: the fused AdamW takes them on recent torch, foreach otherwise
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1,
                                fused=a.mode != "fsdp")
        step_fn = model if a.no_compile else torch.compile(model)
        torch.cuda.reset_peak_memory_stats()
        times = []
        for s in range(a.steps):
            x = torch.randint(0, 50257, (B, a.seq), device="cuda")
            y = torch.randint(0, 50257, (B, a.seq), device="cuda")
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.mode != "fsdp"):  # fsdp: its policy
                loss = step_fn(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            if s >= a.warmup:
                times.append(time.perf_counter() - t0)
        times.sort()
        ms = 1e3 * times[len(times) // 2]
        tok_s = world * B * a.seq / (ms / 1e3)
        flops_per_token = 6 * n_params + 12 * a.layers * a.hidden * a.seq
        if rank == 0:
            print(json.dumps({"impl": "pytorch" if a.mode == "single" else "pytorch-" + a.mode, "gpus": world,
                              "recompute": a.recompute,
                              "batch": B, "seq": a.seq, "ms_per_step": round(ms, 2), "tokens_per_s": round(tok_s),
                              "mfu": round(tok_s * flops_per_token / (989.4e12 * world), 4),
                              "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                              "params": n_params, "final_loss": round(loss.item(), 4)}), flush=True)
        del model, opt, step_fn
        torch.cuda.empty_cache()
    if a.mode != "single":
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
