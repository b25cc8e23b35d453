"""Stand-ins with upstream MiniGPT-4's module names, and a copy of its checkpoint save logic (tests only).

Names follow Vision-CAIR/MiniGPT-4 (files and lines in ``mgpt_bridge.minigpt4_interop``'s docstring):
``eva_vit.VisionTransformer`` (``visual_encoder``), ``ln_vision``, ``Qformer.BertLMHeadModel`` as
MiniGPT-4 trims it (``cls``, word/position embeddings and the text FFNs set to ``None``; the
``position_ids`` buffer stays), ``query_tokens``, the LLaMA (transformers' parameter names plus the
per-layer ``self_attn.rotary_emb.inv_freq`` buffer that transformers 4.28/4.30 kept persistent), peft
0.2.0's LoRA wrapping (``base_model.model`` …, ``lora_A.weight``, ``lm_head`` in ``CastOutputToFloat``),
and ``llama_proj``. Widths are arguments: tiny for bit-exact round trips, real ones with the frozen
parts on the meta device (only trainable tensors and buffers are real, as a saved file holds only those).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

CPU = torch.device("cpu")


@dataclass(frozen=True)
class Widths:
    vit_width: int = 8
    vit_depth: int = 1
    vit_mlp: int = 16
    patches: int = 16
    qformer: int = 32  # hidden width (768 for the real bert-base Q-Former)
    qformer_layers: int = 2
    queries: int = 4
    max_positions: int = 512  # bert-base: Qformer.bert.embeddings.position_ids is [1, 512]
    lm_hidden: int = 64
    lm_layers: int = 2
    lm_heads: int = 4
    lm_inter: int = 128
    vocab: int = 64
    lora_r: int = 0


TINY = Widths()
#: EVA ViT-g/14 (1408 wide, 39 blocks, mlp 6144, 256 patches at 224 px), bert-base Q-Former, LLaMA-7B.
REAL_7B = Widths(1408, 39, 6144, 256, 768, 12, 32, 512, 4096, 32, 32, 11008, 32000)
REAL_13B = replace(REAL_7B, lm_hidden=5120, lm_layers=40, lm_heads=40, lm_inter=13824)


class _Attention(nn.Module):  # eva_vit.Attention: qkv without bias + q_bias/v_bias, proj
    def __init__(self, dim: int):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)


class _Block(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), _Attention(dim)
        self.norm2, self.mlp = nn.LayerNorm(dim), _Mlp(dim, hidden)


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=14, stride=14)


class EvaViT(nn.Module):
    """``create_eva_vit_g``'s names: no relative position bias, no layer-scale gammas, no head."""

    def __init__(self, w: Widths):
        super().__init__()
        self.num_features = w.vit_width
        self.patch_embed = _PatchEmbed(w.vit_width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, w.vit_width))
        self.pos_embed = nn.Parameter(torch.zeros(1, w.patches + 1, w.vit_width))
        self.blocks = nn.ModuleList(_Block(w.vit_width, w.vit_mlp) for _ in range(w.vit_depth))


class _SelfAttention(nn.Module):
    def __init__(self, hidden: int, kv_width: int):
        super().__init__()
        self.query = nn.Linear(hidden, hidden)
        self.key, self.value = nn.Linear(kv_width, hidden), nn.Linear(kv_width, hidden)


class _DenseNorm(nn.Module):  # BertSelfOutput / BertOutput
    def __init__(self, width_in: int, hidden: int):
        super().__init__()
        self.dense, self.LayerNorm = nn.Linear(width_in, hidden), nn.LayerNorm(hidden)


class _BertAttention(nn.Module):
    def __init__(self, hidden: int, kv_width: int):
        super().__init__()
        self.self = _SelfAttention(hidden, kv_width)
        self.output = _DenseNorm(hidden, hidden)


class _Intermediate(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.dense = nn.Linear(hidden, 4 * hidden)


class _BertLayer(nn.Module):  # cross-attention every other layer (cross_attention_freq 2)
    def __init__(self, i: int, hidden: int, vision_width: int):
        super().__init__()
        self.attention = _BertAttention(hidden, hidden)
        if i % 2 == 0:
            self.crossattention = _BertAttention(hidden, vision_width)
        self.intermediate = self.output = None  # MiniGPT-4 sets the text FFN to None
        self.intermediate_query = _Intermediate(hidden)
        self.output_query = _DenseNorm(4 * hidden, hidden)


class _BertEmbeddings(nn.Module):
    def __init__(self, w: Widths):
        super().__init__()
        self.word_embeddings = self.position_embeddings = None
        self.LayerNorm = nn.LayerNorm(w.qformer)
        self.register_buffer("position_ids", torch.arange(w.max_positions, device=CPU).expand((1, -1)))


class _BertEncoder(nn.Module):
    def __init__(self, w: Widths):
        super().__init__()
        self.layer = nn.ModuleList(_BertLayer(i, w.qformer, w.vit_width) for i in range(w.qformer_layers))


class _BertModel(nn.Module):
    def __init__(self, w: Widths):
        super().__init__()
        self.embeddings, self.encoder = _BertEmbeddings(w), _BertEncoder(w)


class QFormer(nn.Module):
    def __init__(self, w: Widths):
        super().__init__()
        self.bert = _BertModel(w)
        self.cls = None


class _LegacyRotary(nn.Module):
    """transformers 4.28/4.30 ``LlamaRotaryEmbedding``: ``inv_freq`` is a persistent buffer."""

    def __init__(self, head_dim: int):
        super().__init__()
        inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, device=CPU).float() / head_dim))
        self.register_buffer("inv_freq", inv_freq)


class _Lora020Linear(nn.Module):
    """peft 0.2.0 ``tuners/lora.py`` ``Linear``: the wrapped weight plus plain ``lora_A``/``lora_B``."""

    def __init__(self, base: nn.Linear, r: int):
        super().__init__()
        self.weight = base.weight
        self.lora_A = nn.Linear(base.in_features, r, bias=False, device=CPU)
        self.lora_B = nn.Linear(r, base.out_features, bias=False, device=CPU)
        nn.init.normal_(self.lora_B.weight)  # trained LoRA: B is no longer zero


class _Wrap(nn.Module):
    def __init__(self, name: str, module: nn.Module):
        super().__init__()
        self.add_module(name, module)


def llama(w: Widths) -> nn.Module:
    """LLaMA with 4.28/4.30's per-layer persistent ``inv_freq``; with ``lora_r``, wrapped as peft 0.2.0."""
    config = LlamaConfig(
        vocab_size=w.vocab,
        hidden_size=w.lm_hidden,
        intermediate_size=w.lm_inter,
        num_hidden_layers=w.lm_layers,
        num_attention_heads=w.lm_heads,
        num_key_value_heads=w.lm_heads,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    for layer in model.model.layers:
        layer.self_attn.rotary_emb = _LegacyRotary(w.lm_hidden // w.lm_heads)
    if not w.lora_r:
        return model
    for layer in model.model.layers:  # target_modules ["q_proj", "v_proj"]
        for name in ("q_proj", "v_proj"):
            setattr(layer.self_attn, name, _Lora020Linear(getattr(layer.self_attn, name), w.lora_r))
    model.lm_head = nn.Sequential(model.lm_head)  # prepare_model_for_int8_training: CastOutputToFloat
    return _Wrap("base_model", _Wrap("model", model))  # PeftModel.base_model = LoraModel; LoraModel.model


class UpstreamMiniGPT(nn.Module):
    """MiniGPT-4 (``qformer=True``; ``v1_order``: mini_gpt4.py's order, else minigpt4.py's), the
    Llama-2 variant (``qformer=False``) or MiniGPT-v2 (``qformer=False`` and ``w.lora_r``)."""

    def __init__(self, w: Widths, *, qformer: bool = True, v1_order: bool = False, device: str = "cpu"):
        super().__init__()
        with torch.device(device):
            if not v1_order:
                self.llama_model = llama(w)  # minigpt_base.py: init_llm before the vision encoder
            self.visual_encoder = EvaViT(w)
            self.ln_vision = nn.LayerNorm(w.vit_width)
            if qformer:
                self.Qformer = QFormer(w)
                self.query_tokens = nn.Parameter(torch.zeros(1, w.queries, w.qformer))
            if v1_order:
                self.llama_model = llama(w)
        self.requires_grad_(False)
        img_f_dim = w.qformer if qformer else 4 * w.vit_width
        self.llama_proj = nn.Linear(img_f_dim, w.lm_hidden, device=CPU)
        for name, p in self.named_parameters():
            if ".lora_" in name:
                p.requires_grad_(True)

    def frozen_keys(self) -> set[str]:
        """What ``load_state_dict(strict=False)`` may report missing: frozen parameters and all buffers."""
        frozen = {n for n, p in self.named_parameters() if not p.requires_grad}
        return frozen | {n for n, _ in self.named_buffers()} & set(self.state_dict())


def upstream_optimizer(model: nn.Module, init_lr: float = 1e-4, weight_decay: float = 0.05):
    """``runner_base.py`` ``optimizer``: AdamW, no decay for ndim < 2 or bias/ln/bn names."""
    p_wd, p_non_wd = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (p_non_wd if p.ndim < 2 or "bias" in n or "ln" in n or "bn" in n else p_wd).append(p)
    groups = [{"params": p_wd, "weight_decay": weight_decay}, {"params": p_non_wd, "weight_decay": 0}]
    return torch.optim.AdamW(groups, lr=init_lr, weight_decay=weight_decay, betas=(0.9, 0.999))


def train_one_step(model: nn.Module, optimizer) -> None:
    """One AdamW step so the optimizer holds moments (and the trainable tensors moved)."""
    loss = sum((p.float() ** 2).mean() for p in model.parameters() if p.requires_grad)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def save_checkpoint(model: nn.Module, optimizer, config: dict, scaler, cur_epoch: int, path: Path) -> Path:
    """A copy of ``runner_base.py::_save_checkpoint`` (l. 575-599), less the DDP unwrap and the logging."""
    param_grad_dic = {k: v.requires_grad for (k, v) in model.named_parameters()}
    state_dict = model.state_dict()
    for k in list(state_dict.keys()):
        if k in param_grad_dic.keys() and not param_grad_dic[k]:
            # delete parameters that do not require gradient
            del state_dict[k]
    save_obj = {
        "model": state_dict,
        "optimizer": optimizer.state_dict(),
        "config": config,
        "scaler": scaler.state_dict() if scaler else None,
        "epoch": cur_epoch,
    }
    torch.save(save_obj, path)
    return path


def run_config(layout: str, lora_r: int = 64) -> dict:
    """``Config.to_dict()`` of upstream's train_configs (the parts a file's ``config`` holds)."""
    run = {
        "task": "image_text_pretrain",
        "lr_sched": "linear_warmup_cosine_lr",
        "weight_decay": 0.05,
        "amp": True,
        "seed": 42,
    }
    model = {
        "model_type": "pretrain_vicuna0",
        "image_size": 224,
        "freeze_vit": True,
        "freeze_qformer": True,
        "num_query_token": 32,
        "llama_model": "/path/to/vicuna",
    }
    if layout == "v1_stage1":
        model.update(arch="mini_gpt4", model_type="pretrain_vicuna", max_txt_len=32, end_sym="\n")
        run.update(init_lr=1e-4, min_lr=8e-5, warmup_lr=1e-6, max_epoch=4, iters_per_epoch=5000)
    elif layout in ("v1_stage2", "minigpt4", "llama2"):
        model.update(
            arch="mini_gpt4" if layout == "v1_stage2" else "minigpt4",
            max_txt_len=160,
            end_sym="###",
            prompt_path="prompts/alignment.txt",
            prompt_template="###Human: {} ###Assistant: ",
            ckpt="/path/to/stage1/checkpoint/",
        )
        if layout == "llama2":
            model.update(
                model_type="pretrain_llama2",
                has_qformer=False,
                end_sym="</s>",
                prompt_template="[INST] {} [/INST] ",
            )
        run.update(init_lr=3e-5, min_lr=1e-5, warmup_lr=1e-6, max_epoch=5, iters_per_epoch=200)
    else:  # MiniGPT-v2 finetune
        model = {
            "arch": "minigpt_v2",
            "model_type": "pretrain",
            "image_size": 448,
            "max_txt_len": 1024,
            "end_sym": "</s>",
            "lora_r": lora_r,
            "lora_alpha": 16,
            "chat_template": True,
        }
        run.update(init_lr=1e-5, min_lr=1e-6, warmup_lr=1e-6, max_epoch=50, iters_per_epoch=1000)
    return {"model": model, "run": run, "datasets": {"cc_sbu_align": {"batch_size": 12}}}
