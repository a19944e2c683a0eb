#!/usr/bin/env python3
"""Golden reference data for tests/test_golden.c: a small GPT-2, LLaMA, BERT, ViT and T5 in plain PyTorch.

Regenerate (from the repository root):

    python3 tests/golden/gen_golden.py

Needs torch only: PyPI's CPU wheel (`pip install torch --index-url https://download.pytorch.org/whl/cpu`)
or Debian's python3-torch (`apt-get install python3-torch`, then run it with /usr/bin/python3; the
committed files were made with that, torch 1.13). The output is deterministic (fixed seeds, CPU, float64):
rerunning gives the same files, except for gradients that are zero in exact arithmetic (the key biases:
softmax ignores them), whose float64 rounding noise (~1e-17) can differ between runs; test_golden.c holds
those to a floor taken from the model's largest gradient. The .safetensors files are written by the small writer below, so the
`safetensors` package is not needed (if it is installed, the files are read back through it as a check).
The C test never runs this script: it reads the committed tests/golden/{gpt2,llama,bert,vit,t5}_golden.safetensors.

The models follow Hugging Face semantics, tensor names and layouts exactly (GPT2LMHeadModel without the
"transformer." prefix, LlamaForCausalLM, BertForMaskedLM: post-LN blocks, embedding LayerNorm, exact
erf GELU, the MLM transform and a decoder tied to the word embeddings with its own bias;
ViTForImageClassification: a Conv2d patch embedding run as a real convolution, class token, learned
positions, pre-LN blocks, the classifier; T5ForConditionalGeneration v1.0: T5 LayerNorm, unscaled attention
with the bucketed relative position bias of each stack's block 0, cross-attention, ReLU, the tied head on
sequence_output * d_model^-0.5, buckets computed in float32 like HF), so a wrong weight mapping, transpose, RoPE convention or bias in
the C import/export shows up as a mismatch. Everything is computed in float64 (so the golden values are
exact to far below fp32 rounding) and stored as float32; the weights are rounded to fp32 first, so the C
model sees exactly the weights the reference used. (RoPE angles are computed in float64 too, where HF
computes them in fp32; for positions < 8 the difference is ~1e-7, far below the tolerance.) Each file holds:

    <HF name>              F32  every weight
    golden.tokens          I32  [B,T] input ids in [0,V); BERT [B,T,2] (id, token type); T5 [B,T,2]
                                (input id, decoder input id = labels shifted right); ViT [B,T,Pd]
                                the patch pixels 0..255 in the C model's input layout (position 0, the
                                class token, zero; then the patches row-major, each (channel, row, col))
    golden.targets         I32  [B,T] next-token targets; two positions are -1 (ignore_index); BERT: the
                                masked positions' tokens, -1 elsewhere; ViT: the label at position 0
    golden.logits          F32  [B,T,V] (ViT: the classifier applied at every position; HF's logits are
                                position 0's row)
    golden.loss            F32  [1]   F.cross_entropy(..., ignore_index=-1), mean over counted positions
    grad.<HF name>         F32  d loss / d weight for every weight (tied head: the sum lands in wte)
    __metadata__: "model" (JSON model file for gv_model_spec_load_json), "B", "T"

With --check, it also runs the same model in float32 and prints the fp32-vs-fp64 error under the
criterion of test_golden.c, to show that the tolerance there is what fp32 arithmetic needs.
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REF = torch.float64
GOLDEN_FLOOR = 0.5  # GV_GOLDEN_FLOOR of test_golden.c

GPT2 = dict(arch="gpt2", n_layer=2, n_embd=32, n_head=4, n_kv_head=4, ffn=128, max_seq=16, vocab=97,
            padded_vocab=128, norm_eps=1e-5, rope_theta=10000, tied=True, bias=True)
LLAMA = dict(arch="llama", n_layer=2, n_embd=32, n_head=4, n_kv_head=2, ffn=48, max_seq=16, vocab=101,
             padded_vocab=128, norm_eps=1e-5, rope_theta=10000, tied=False, bias=False)
BERT = dict(arch="bert", n_layer=2, n_embd=32, n_head=4, n_kv_head=4, ffn=64, max_seq=16, vocab=97,
            padded_vocab=128, norm_eps=1e-12, tied=True, bias=True, type_vocab=2, mask_token=3)
VIT = dict(arch="vit", n_layer=2, n_embd=32, n_head=4, n_kv_head=4, ffn=64, max_seq=10, vocab=10,
           padded_vocab=16, norm_eps=1e-12, tied=False, bias=True, image_size=12, patch_size=4, channels=3)
T5 = dict(arch="t5", n_layer=4, n_dec_layer=2, n_embd=32, n_head=4, n_kv_head=4, ffn=64, max_seq=16, vocab=97,
          padded_vocab=128, norm_eps=1e-6, tied=True, bias=False, rel_buckets=8, rel_max_distance=20)
B, T = 2, 8


# ---- weights ---------------------------------------------------------------------------------------------

def gpt2_weights(cfg, g):
    C, V, L, Tm, Fh = cfg["n_embd"], cfg["vocab"], cfg["n_layer"], cfg["max_seq"], cfg["ffn"]

    def normal(shape, std):
        return torch.randn(*shape, generator=g, dtype=REF) * std

    w = {"wte.weight": normal((V, C), 0.3), "wpe.weight": normal((Tm, C), 0.2)}
    for i in range(L):
        p = f"h.{i}."
        w[p + "ln_1.weight"] = 1.0 + normal((C,), 0.2)
        w[p + "ln_1.bias"] = normal((C,), 0.2)
        w[p + "attn.c_attn.weight"] = normal((C, 3 * C), 0.2)  # Conv1D: y = x @ W + b
        w[p + "attn.c_attn.bias"] = normal((3 * C,), 0.2)
        w[p + "attn.c_proj.weight"] = normal((C, C), 0.15)
        w[p + "attn.c_proj.bias"] = normal((C,), 0.2)
        w[p + "ln_2.weight"] = 1.0 + normal((C,), 0.2)
        w[p + "ln_2.bias"] = normal((C,), 0.2)
        w[p + "mlp.c_fc.weight"] = normal((C, Fh), 0.2)
        w[p + "mlp.c_fc.bias"] = normal((Fh,), 0.2)
        w[p + "mlp.c_proj.weight"] = normal((Fh, C), 0.1)
        w[p + "mlp.c_proj.bias"] = normal((C,), 0.2)
    w["ln_f.weight"] = 1.0 + normal((C,), 0.2)
    w["ln_f.bias"] = normal((C,), 0.2)
    return w


def llama_weights(cfg, g):
    C, V, L, Fh = cfg["n_embd"], cfg["vocab"], cfg["n_layer"], cfg["ffn"]
    H, KVH = cfg["n_head"], cfg["n_kv_head"]
    D = C // H

    def normal(shape, std):
        return torch.randn(*shape, generator=g, dtype=REF) * std

    w = {"model.embed_tokens.weight": normal((V, C), 0.5)}
    for i in range(L):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = 1.0 + normal((C,), 0.2)
        w[p + "self_attn.q_proj.weight"] = normal((H * D, C), 0.25)  # nn.Linear: y = x @ W^T
        w[p + "self_attn.k_proj.weight"] = normal((KVH * D, C), 0.25)
        w[p + "self_attn.v_proj.weight"] = normal((KVH * D, C), 0.2)
        w[p + "self_attn.o_proj.weight"] = normal((C, H * D), 0.15)
        w[p + "post_attention_layernorm.weight"] = 1.0 + normal((C,), 0.2)
        w[p + "mlp.gate_proj.weight"] = normal((Fh, C), 0.2)
        w[p + "mlp.up_proj.weight"] = normal((Fh, C), 0.2)
        w[p + "mlp.down_proj.weight"] = normal((C, Fh), 0.15)
    w["model.norm.weight"] = 1.0 + normal((C,), 0.2)
    w["lm_head.weight"] = normal((V, C), 0.15)
    return w


def linear(g, w, name, out_f, in_f, std):  # nn.Linear weight [out, in] and bias
    w[name + ".weight"] = torch.randn(out_f, in_f, generator=g, dtype=REF) * std
    w[name + ".bias"] = torch.randn(out_f, generator=g, dtype=REF) * 0.2


def layer_norm_w(g, w, name, C):
    w[name + ".weight"] = 1.0 + torch.randn(C, generator=g, dtype=REF) * 0.2
    w[name + ".bias"] = torch.randn(C, generator=g, dtype=REF) * 0.2


def encoder_layer_weights(g, w, p, cfg, names):
    C, Fh = cfg["n_embd"], cfg["ffn"]
    att, ln1, ln2 = names
    for k, std in (("query", 0.25), ("key", 0.25), ("value", 0.2)):
        linear(g, w, f"{p}{att}.{k}", C, C, std)
    linear(g, w, p + "attention.output.dense", C, C, 0.15)
    layer_norm_w(g, w, p + ln1, C)
    linear(g, w, p + "intermediate.dense", Fh, C, 0.2)
    linear(g, w, p + "output.dense", C, Fh, 0.15)
    layer_norm_w(g, w, p + ln2, C)


BERT_NAMES = ("attention.self", "attention.output.LayerNorm", "output.LayerNorm")
VIT_NAMES = ("attention.attention", "layernorm_before", "layernorm_after")


def bert_weights(cfg, g):
    C, V, L, Tm = cfg["n_embd"], cfg["vocab"], cfg["n_layer"], cfg["max_seq"]

    def normal(shape, std):
        return torch.randn(*shape, generator=g, dtype=REF) * std

    w = {"bert.embeddings.word_embeddings.weight": normal((V, C), 0.3),
         "bert.embeddings.position_embeddings.weight": normal((Tm, C), 0.2),
         "bert.embeddings.token_type_embeddings.weight": normal((cfg["type_vocab"], C), 0.2)}
    layer_norm_w(g, w, "bert.embeddings.LayerNorm", C)
    for i in range(L):
        encoder_layer_weights(g, w, f"bert.encoder.layer.{i}.", cfg, BERT_NAMES)
    linear(g, w, "cls.predictions.transform.dense", C, C, 0.2)
    layer_norm_w(g, w, "cls.predictions.transform.LayerNorm", C)
    w["cls.predictions.bias"] = normal((V,), 0.2)  # the decoder's bias; its weight is the word embedding
    return w


def vit_weights(cfg, g):
    C, V, L, Tm = cfg["n_embd"], cfg["vocab"], cfg["n_layer"], cfg["max_seq"]
    ch, P = cfg["channels"], cfg["patch_size"]

    def normal(shape, std):
        return torch.randn(*shape, generator=g, dtype=REF) * std

    w = {"vit.embeddings.cls_token": normal((1, 1, C), 0.3),
         "vit.embeddings.position_embeddings": normal((1, Tm, C), 0.2),
         "vit.embeddings.patch_embeddings.projection.weight": normal((C, ch, P, P), 0.15),
         "vit.embeddings.patch_embeddings.projection.bias": normal((C,), 0.2)}
    for i in range(L):
        encoder_layer_weights(g, w, f"vit.encoder.layer.{i}.", cfg, VIT_NAMES)
    layer_norm_w(g, w, "vit.layernorm", C)
    linear(g, w, "classifier", V, C, 0.3)
    return w


def t5_weights(cfg, g):
    C, V, Fh, H = cfg["n_embd"], cfg["vocab"], cfg["ffn"], cfg["n_head"]
    Ld = cfg["n_dec_layer"]
    Le = cfg["n_layer"] - Ld

    def normal(shape, std):
        return torch.randn(*shape, generator=g, dtype=REF) * std

    w = {"shared.weight": normal((V, C), 0.5)}

    def attn(p):
        for k, std in (("q", 0.1), ("k", 0.15), ("v", 0.2), ("o", 0.15)):  # T5 does not scale q.k
            w[f"{p}.{k}.weight"] = normal((C, C), std)

    def ff(p):
        w[p + ".DenseReluDense.wi.weight"] = normal((Fh, C), 0.2)
        w[p + ".DenseReluDense.wo.weight"] = normal((C, Fh), 0.15)

    for stack, n in (("encoder", Le), ("decoder", Ld)):
        for i in range(n):
            p = f"{stack}.block.{i}.layer."
            w[p + "0.layer_norm.weight"] = 1.0 + normal((C,), 0.2)
            attn(p + "0.SelfAttention")
            if i == 0:
                w[p + "0.SelfAttention.relative_attention_bias.weight"] = normal((cfg["rel_buckets"], H), 0.5)
            if stack == "decoder":
                w[p + "1.layer_norm.weight"] = 1.0 + normal((C,), 0.2)
                attn(p + "1.EncDecAttention")
            f = 2 if stack == "decoder" else 1
            w[f"{p}{f}.layer_norm.weight"] = 1.0 + normal((C,), 0.2)
            ff(f"{p}{f}")
        w[f"{stack}.final_layer_norm.weight"] = 1.0 + normal((C,), 0.2)
    return w


# ---- models (Hugging Face semantics, written out op by op) ----------------------------------------------

def causal_attention(q, k, v):
    """q [B,H,T,D], k/v [B,H,T,D] -> [B,H,T,D]; eager HF attention: scores/sqrt(D), causal, softmax."""
    Tq, D = q.shape[-2], q.shape[-1]
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    mask = torch.ones(Tq, Tq, dtype=torch.bool).tril()
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return F.softmax(scores, dim=-1) @ v


def gelu_new(x):  # HF "gelu_new" (GPT-2): tanh approximation
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gpt2_forward(cfg, w, tokens):
    C, H, L, eps = cfg["n_embd"], cfg["n_head"], cfg["n_layer"], cfg["norm_eps"]
    Bn, Tn = tokens.shape
    D = C // H
    pos = torch.arange(Tn)
    x = w["wte.weight"][tokens] + w["wpe.weight"][pos][None]

    def heads(t):  # [B,T,C] -> [B,H,T,D]
        return t.view(Bn, Tn, H, D).permute(0, 2, 1, 3)

    for i in range(L):
        p = f"h.{i}."
        h = F.layer_norm(x, (C,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        qkv = h @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = qkv.split(C, dim=2)
        a = causal_attention(heads(q), heads(k), heads(v))
        a = a.permute(0, 2, 1, 3).contiguous().view(Bn, Tn, C)
        x = x + (a @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"])
        h = F.layer_norm(x, (C,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        h = gelu_new(h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        x = x + (h @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"])
    x = F.layer_norm(x, (C,), w["ln_f.weight"], w["ln_f.bias"], eps)
    return x @ w["wte.weight"].t()  # tied LM head


def rms_norm(x, weight, eps):  # LlamaRMSNorm
    variance = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(variance + eps))


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope_cos_sin(Tn, D, theta, dtype):  # LlamaRotaryEmbedding (default rope type), positions 0..T-1
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.int64).to(torch.float64) / D))
    pos = torch.arange(Tn, dtype=torch.float64)
    freqs = pos[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def repeat_kv(x, n_rep):  # [B,KVH,T,D] -> [B,KVH*n_rep,T,D]; query head h reads kv head h // n_rep
    Bn, KVH, Tn, D = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(Bn, KVH, n_rep, Tn, D).reshape(Bn, KVH * n_rep, Tn, D)


def llama_forward(cfg, w, tokens):
    C, H, KVH, L = cfg["n_embd"], cfg["n_head"], cfg["n_kv_head"], cfg["n_layer"]
    eps, theta = cfg["norm_eps"], cfg["rope_theta"]
    Bn, Tn = tokens.shape
    D = C // H
    x = w["model.embed_tokens.weight"][tokens]
    cos, sin = rope_cos_sin(Tn, D, theta, x.dtype)
    cos, sin = cos[None, None], sin[None, None]  # unsqueeze over batch and heads
    for i in range(L):
        p = f"model.layers.{i}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = (h @ w[p + "self_attn.q_proj.weight"].t()).view(Bn, Tn, H, D).transpose(1, 2)
        k = (h @ w[p + "self_attn.k_proj.weight"].t()).view(Bn, Tn, KVH, D).transpose(1, 2)
        v = (h @ w[p + "self_attn.v_proj.weight"].t()).view(Bn, Tn, KVH, D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        a = causal_attention(q, repeat_kv(k, H // KVH), repeat_kv(v, H // KVH))
        a = a.transpose(1, 2).reshape(Bn, Tn, H * D)
        x = x + a @ w[p + "self_attn.o_proj.weight"].t()
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = h @ w[p + "mlp.gate_proj.weight"].t()
        up = h @ w[p + "mlp.up_proj.weight"].t()
        x = x + (F.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].t()
    x = rms_norm(x, w["model.norm.weight"], eps)
    return x @ w["lm_head.weight"].t()


def gelu_erf(x):  # HF "gelu" (BERT, ViT): exact
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def encoder_attention(cfg, w, p, att, x):
    """BertSelfAttention / ViTSelfAttention + output dense: bidirectional, no mask (eager)."""
    C, H = cfg["n_embd"], cfg["n_head"]
    Bn, Tn = x.shape[0], x.shape[1]
    D = C // H

    def heads(t):
        return t.view(Bn, Tn, H, D).permute(0, 2, 1, 3)

    q = heads(x @ w[f"{p}{att}.query.weight"].t() + w[f"{p}{att}.query.bias"])
    k = heads(x @ w[f"{p}{att}.key.weight"].t() + w[f"{p}{att}.key.bias"])
    v = heads(x @ w[f"{p}{att}.value.weight"].t() + w[f"{p}{att}.value.bias"])
    a = F.softmax((q @ k.transpose(-1, -2)) / math.sqrt(D), dim=-1) @ v
    a = a.permute(0, 2, 1, 3).contiguous().view(Bn, Tn, C)
    return a @ w[p + "attention.output.dense.weight"].t() + w[p + "attention.output.dense.bias"]


def mlp(w, p, x):
    h = gelu_erf(x @ w[p + "intermediate.dense.weight"].t() + w[p + "intermediate.dense.bias"])
    return h @ w[p + "output.dense.weight"].t() + w[p + "output.dense.bias"]


def ln(w, name, x, eps):
    return F.layer_norm(x, (x.shape[-1],), w[name + ".weight"], w[name + ".bias"], eps)


def bert_forward(cfg, w, inputs):
    """BertForMaskedLM (no pooler): inputs [B,T,2] = (input_ids, token_type_ids), no attention mask."""
    eps, L = cfg["norm_eps"], cfg["n_layer"]
    ids, types = inputs[..., 0].long(), inputs[..., 1].long()
    pos = torch.arange(ids.shape[1])
    x = (w["bert.embeddings.word_embeddings.weight"][ids] + w["bert.embeddings.position_embeddings.weight"][pos][None]
         + w["bert.embeddings.token_type_embeddings.weight"][types])
    x = ln(w, "bert.embeddings.LayerNorm", x, eps)
    for i in range(L):
        p = f"bert.encoder.layer.{i}."
        x = ln(w, p + "attention.output.LayerNorm", x + encoder_attention(cfg, w, p, "attention.self", x), eps)
        x = ln(w, p + "output.LayerNorm", x + mlp(w, p, x), eps)
    h = gelu_erf(x @ w["cls.predictions.transform.dense.weight"].t() + w["cls.predictions.transform.dense.bias"])
    h = ln(w, "cls.predictions.transform.LayerNorm", h, eps)
    return h @ w["bert.embeddings.word_embeddings.weight"].t() + w["cls.predictions.bias"]  # tied decoder


def vit_patch_words(cfg, pixels):
    """uint8 images [B,ch,S,S] -> the C model's input words [B,T,Pd]: class token row 0 zero, then the
    patches in row-major grid order, each flattened (channel, row, col) like the Conv2d kernel."""
    Bn, ch, S, P = pixels.shape[0], cfg["channels"], cfg["image_size"], cfg["patch_size"]
    n = S // P
    t = pixels.view(Bn, ch, n, P, n, P).permute(0, 2, 4, 1, 3, 5).reshape(Bn, n * n, ch * P * P)
    return torch.cat([torch.zeros(Bn, 1, ch * P * P, dtype=t.dtype), t], dim=1)


def vit_forward(cfg, w, pixels):
    """ViTForImageClassification with the classifier applied at every position. pixels: uint8 [B,ch,S,S],
    scaled as ViTImageProcessor does (mean = std = 0.5): x / 255 * 2 - 1 (= x / 127.5 - 1)."""
    eps, L, P, C = cfg["norm_eps"], cfg["n_layer"], cfg["patch_size"], cfg["n_embd"]
    conv_w = w["vit.embeddings.patch_embeddings.projection.weight"]
    xpix = pixels.to(conv_w.dtype) / 127.5 - 1.0
    patches = F.conv2d(xpix, conv_w, w["vit.embeddings.patch_embeddings.projection.bias"], stride=P)
    patches = patches.flatten(2).transpose(1, 2)  # [B, n*n, C]
    cls = w["vit.embeddings.cls_token"].expand(pixels.shape[0], 1, C)
    x = torch.cat([cls, patches], dim=1) + w["vit.embeddings.position_embeddings"]
    for i in range(L):
        p = f"vit.encoder.layer.{i}."
        x = x + encoder_attention(cfg, w, p, "attention.attention", ln(w, p + "layernorm_before", x, eps))
        x = x + mlp(w, p, ln(w, p + "layernorm_after", x, eps))
    x = ln(w, "vit.layernorm", x, eps)
    return x @ w["classifier.weight"].t() + w["classifier.bias"]


def t5_bucket(rel, bidirectional, nb, max_distance):
    """T5Attention._relative_position_bucket (float32 logarithms, as HF computes them)."""
    ret = torch.zeros_like(rel)
    if bidirectional:
        nb //= 2
        ret += (rel > 0).to(torch.long) * nb
        n = torch.abs(rel)
    else:
        n = -torch.min(rel, torch.zeros_like(rel))
    max_exact = nb // 2
    large = max_exact + (torch.log(n.float() / max_exact) / math.log(max_distance / max_exact)
                         * (nb - max_exact)).to(torch.long)
    large = torch.min(large, torch.full_like(large, nb - 1))
    return ret + torch.where(n < max_exact, n, large)


def t5_position_bias(cfg, table, Tn, bidirectional):  # [1, H, T, T]
    rel = torch.arange(Tn)[None, :] - torch.arange(Tn)[:, None]  # memory - query
    buckets = t5_bucket(rel, bidirectional, cfg["rel_buckets"], cfg["rel_max_distance"])
    return table[buckets].permute(2, 0, 1)[None]


def t5_attention(cfg, w, p, x, kv, bias, causal):
    """T5Attention: no 1/sqrt(d) scaling; scores + position bias (+ the causal mask); softmax."""
    C, H = cfg["n_embd"], cfg["n_head"]
    Bn, Tq, Tk = x.shape[0], x.shape[1], kv.shape[1]
    D = C // H
    q = (x @ w[p + ".q.weight"].t()).view(Bn, Tq, H, D).transpose(1, 2)
    k = (kv @ w[p + ".k.weight"].t()).view(Bn, Tk, H, D).transpose(1, 2)
    v = (kv @ w[p + ".v.weight"].t()).view(Bn, Tk, H, D).transpose(1, 2)
    scores = q @ k.transpose(-1, -2)
    if bias is not None:
        scores = scores + bias
    if causal:
        mask = torch.ones(Tq, Tk, dtype=torch.bool).tril()
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    a = (F.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(Bn, Tq, C)
    return a @ w[p + ".o.weight"].t()


def t5_forward(cfg, w, inputs):
    """T5ForConditionalGeneration (v1.0: ReLU, tied head): inputs [B,T,2] = (input_ids, decoder_input_ids)."""
    eps, Ld = cfg["norm_eps"], cfg["n_dec_layer"]
    Le = cfg["n_layer"] - Ld
    src, dec_in = inputs[..., 0].long(), inputs[..., 1].long()
    Tn = src.shape[1]

    def ff(p, h):
        return torch.relu(h @ w[p + ".DenseReluDense.wi.weight"].t()) @ w[p + ".DenseReluDense.wo.weight"].t()

    x = w["shared.weight"][src]
    bias = t5_position_bias(cfg, w["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], Tn, True)
    for i in range(Le):
        p = f"encoder.block.{i}.layer."
        x = x + t5_attention(cfg, w, p + "0.SelfAttention", *(2 * [rms_norm(x, w[p + "0.layer_norm.weight"], eps)]),
                             bias, False)
        x = x + ff(p + "1", rms_norm(x, w[p + "1.layer_norm.weight"], eps))
    enc = rms_norm(x, w["encoder.final_layer_norm.weight"], eps)
    y = w["shared.weight"][dec_in]
    bias = t5_position_bias(cfg, w["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], Tn, False)
    for i in range(Ld):
        p = f"decoder.block.{i}.layer."
        y = y + t5_attention(cfg, w, p + "0.SelfAttention", *(2 * [rms_norm(y, w[p + "0.layer_norm.weight"], eps)]),
                             bias, True)
        y = y + t5_attention(cfg, w, p + "1.EncDecAttention", rms_norm(y, w[p + "1.layer_norm.weight"], eps), enc,
                             None, False)
        y = y + ff(p + "2", rms_norm(y, w[p + "2.layer_norm.weight"], eps))
    y = rms_norm(y, w["decoder.final_layer_norm.weight"], eps) * (cfg["n_embd"] ** -0.5)
    return y @ w["shared.weight"].t()


# ---- run and write --------------------------------------------------------------------------------------

def run(cfg, forward, w, tokens, targets, dtype):
    params = {k: v.to(dtype).clone().requires_grad_(True) for k, v in w.items()}
    logits = forward(cfg, params, tokens)
    V = cfg["vocab"]
    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-1)
    loss.backward()
    return logits.detach(), loss.detach(), {k: p.grad.detach() for k, p in params.items()}


def write_safetensors(path, tensors, metadata):
    """Minimal safetensors writer: LE u64 header size, JSON header (padded with spaces to 8 bytes), data."""
    names = sorted(tensors)
    header, blobs, off = {}, [], 0
    for n in names:
        t = tensors[n].contiguous()
        if t.dtype == torch.float32:
            dt, fmt = "F32", "f"
        elif t.dtype == torch.int32:
            dt, fmt = "I32", "i"
        else:
            raise ValueError(f"{n}: unsupported dtype {t.dtype}")
        vals = t.flatten().tolist()  # no numpy needed; fp32 values round-trip exactly through Python floats
        raw = struct.pack(f"<{len(vals)}{fmt}", *vals)
        header[n] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = metadata
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for raw in blobs:
            f.write(raw)


def scaled_err(a, b, gmax=0.0):
    """Error of a (fp32) against b (exact) under test_golden.c's criterion: max |a-b| / max(|b|, floor)
    with floor = GOLDEN_FLOOR * max|b| over the tensor, or over all gradients (gmax) for a tensor that is
    zero in exact arithmetic (max|b| < 1e-9 gmax); the test requires this to be <= 1e-5."""
    a, b = a.double().flatten(), b.double().flatten()
    scale = b.abs().max().item()
    scale = gmax if scale < 1e-9 * gmax else scale
    floor = GOLDEN_FLOOR * max(scale, 1e-30)
    return ((a - b).abs() / b.abs().clamp_min(floor)).max().item()


def inputs_lm(cfg, g):
    V = cfg["vocab"]
    tokens = torch.randint(0, V, (B, T), generator=g)
    targets = torch.randint(0, V, (B, T), generator=g)
    targets[0, 3] = -1
    targets[1, T - 1] = -1
    return B, T, tokens, targets, tokens


def inputs_bert(cfg, g):
    """Masked-LM inputs: random ids and token types (a segment boundary per row), 3 masked positions per
    row whose targets are random ids (one of them an unchanged input), -1 elsewhere."""
    V = cfg["vocab"]
    ids = torch.randint(0, V, (B, T), generator=g)
    types = torch.zeros(B, T, dtype=torch.long)
    types[0, 5:] = 1
    types[1, 2:] = 1
    targets = torch.full((B, T), -1, dtype=torch.long)
    for b, ps in enumerate(((1, 4, 6), (0, 3, 7))):
        for j, p in enumerate(ps):
            targets[b, p] = int(torch.randint(0, V, (1,), generator=g))
            ids[b, p] = cfg["mask_token"] if j == 0 else ids[b, p]
        targets[b, ps[2]] = ids[b, ps[2]]  # a kept token is predicted too
    inputs = torch.stack([ids, types], dim=-1)
    return B, T, inputs, targets, inputs


def inputs_vit(cfg, g):
    Bv, S, ch = 4, cfg["image_size"], cfg["channels"]
    pixels = torch.randint(0, 256, (Bv, ch, S, S), generator=g)
    labels = torch.randint(0, cfg["vocab"], (Bv,), generator=g)
    Tv = cfg["max_seq"]
    targets = torch.full((Bv, Tv), -1, dtype=torch.long)
    targets[:, 0] = labels
    return Bv, Tv, pixels, targets, vit_patch_words(cfg, pixels)


def inputs_t5(cfg, g):
    """Seq2seq: random source ids, labels with two ignored positions, decoder inputs = the labels shifted
    right behind the start token 0 (HF _shift_right, ignored labels becoming 0)."""
    V = cfg["vocab"]
    src = torch.randint(0, V, (B, T), generator=g)
    labels = torch.randint(0, V, (B, T), generator=g)
    labels[0, 2] = -1
    labels[1, T - 1] = -1
    dec_in = torch.cat([torch.zeros(B, 1, dtype=torch.long), labels[:, :-1]], dim=1).clamp_min(0)
    inputs = torch.stack([src, dec_in], dim=-1)
    return B, T, inputs, labels, inputs


def make(name, cfg, init, forward, seed, check, make_inputs=inputs_lm):
    g = torch.Generator().manual_seed(seed)
    w = init(cfg, g)
    Bn, Tn, tokens, targets, words = make_inputs(cfg, g)
    w = {k: v.float().double() for k, v in w.items()}  # weights exactly representable in fp32
    logits, loss, grads = run(cfg, forward, w, tokens, targets, REF)

    out = {k: v.float() for k, v in w.items()}
    out["golden.tokens"] = words.to(torch.int32)
    out["golden.targets"] = targets.to(torch.int32)
    out["golden.logits"] = logits.float()
    out["golden.loss"] = loss.float().reshape(1)
    for k, gr in grads.items():
        out["grad." + k] = gr.float()
    meta = {"model": json.dumps(cfg), "B": str(Bn), "T": str(Tn)}
    path = os.path.join(HERE, f"{name}_golden.safetensors")
    write_safetensors(path, out, meta)
    print(f"{path}: {os.path.getsize(path)} bytes, {len(w)} weights, loss {loss.item():.6f}, "
          f"|logits| max {logits.abs().max().item():.3f}")

    try:  # read back through the reference implementation when it is installed
        from safetensors.torch import load_file
        back = load_file(path)
        assert set(back) == set(out)
        for k in out:
            assert torch.equal(back[k], out[k]), k
    except ImportError:
        pass

    if check:
        l32, s32, g32 = run(cfg, forward, w, tokens, targets, torch.float32)
        worst = [("loss", scaled_err(s32.reshape(1), loss.reshape(1))), ("logits", scaled_err(l32, logits))]
        gmax = max(g.abs().max().item() for g in grads.values())
        worst += [(k, scaled_err(g32[k], grads[k], gmax)) for k in grads]
        worst.sort(key=lambda e: -e[1])
        print(f"  torch fp32 vs fp64 (criterion of test_golden.c, limit 1e-5): "
              + ", ".join(f"{k} {e:.2e}" for k, e in worst[:4]))


def main():
    check = "--check" in sys.argv[1:]
    torch.manual_seed(0)
    make("gpt2", GPT2, gpt2_weights, gpt2_forward, 1234, check)
    make("llama", LLAMA, llama_weights, llama_forward, 5678, check)
    make("bert", BERT, bert_weights, bert_forward, 4242, check, inputs_bert)
    make("vit", VIT, vit_weights, vit_forward, 9090, check, inputs_vit)
    make("t5", T5, t5_weights, t5_forward, 5151, check, inputs_t5)


if __name__ == "__main__":
    main()
