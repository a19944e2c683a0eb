"""PyTorch reference for the GPT-2 124M benchmark (issue: CUDA backend vs PyTorch).

The same model as galvatron's gpt2-124m (learned positions, LayerNorm, GELU tanh, tied embeddings, vocab
padded to 50304), trained the fast way PyTorch users would: torch.compile, bf16 autocast, SDPA flash
attention, fused AdamW. Prints one JSON line per batch size with the median step time over the timed steps.

usage: python3 bench/torch_gpt2.py --batch 16 64 --seq 1024 --steps 50 [--layers 12 --hidden 768 --heads 12]
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


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

    def forward(self, idx, targets):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for b in self.h:
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
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    for B in a.batch:
        torch.manual_seed(0)
        model = GPT(a.layers, a.hidden, a.heads, a.vocab, a.seq).cuda()
        n_params = sum(p.numel() for p in model.parameters())
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
        step_fn = torch.compile(model)
        torch.cuda.reset_peak_memory_stats()
        times = []
        for s in range(a.steps):
            x = torch.randint(0, 50257, (B, a.seq), device="cuda")
            y = torch.randint(0, 50257, (B, a.seq), device="cuda")
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16):
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
        tok_s = B * a.seq / (ms / 1e3)
        flops_per_token = 6 * n_params + 12 * a.layers * a.hidden * a.seq
        print(json.dumps({"impl": "pytorch", "batch": B, "seq": a.seq, "ms_per_step": round(ms, 2),
                          "tokens_per_s": round(tok_s), "mfu": round(tok_s * flops_per_token / 989.4e12, 4),
                          "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                          "params": n_params, "final_loss": round(loss.item(), 4)}), flush=True)
        del model, opt, step_fn
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
