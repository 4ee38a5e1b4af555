"""Tiny real models and synthetic episodes for reward-model tests (nothing can be downloaded here)."""


import asyncio
import json
import threading
import time
from pathlib import Path

import numpy as np

TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def save_tiny_open_clip(directory: Path, seed: int = 0) -> Path:
    """A randomly initialised open_clip model saved the way the hub lays one out (config + safetensors)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    model = open_clip.CLIP(**TINY_CLIP_CFG)
    config = {"model_cfg": TINY_CLIP_CFG,
              "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                                 "std": [0.26862954, 0.26130258, 0.27577711]}}
    (directory / "open_clip_config.json").write_text(json.dumps(config))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / "open_clip_model.safetensors"))
    return directory


def moving_square_frames(length: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """A bright square sliding left to right: progress is visible in the pixels."""
    rng = np.random.default_rng(seed)
    frames = np.full((length, size, size, 3), 40, np.uint8)
    frames += rng.integers(0, 10, frames.shape, dtype=np.uint8)
    for t in range(length):
        x = int(round(t / max(length - 1, 1) * (size - 8)))
        frames[t, 12:20, x:x + 8] = (230, 30, 30)
    return frames


QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                "<|video_pad|>"]
QWEN_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def save_tiny_qwen2_vl(directory: Path, teach: list[tuple[list[np.ndarray], str, str]] = (), steps: int = 60) -> Path:
    """A ~0.2M-parameter Qwen2-VL (tokenizer trained here, real Qwen2-VL processor and architecture),
    optionally fine-tuned to give `answer` for (images, prompt) — so the transformers path can be
    checked end to end, including parsing, without downloading a checkpoint."""
    import torch
    from PIL import Image
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        Qwen2TokenizerFast,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["ANSWER: 1 2 3 4 5 <score>+NN%</score> lift the red cube robot episode frames task score progress"]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=QWEN_SPECIAL,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = Qwen2TokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    processor = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(min_pixels=28 * 28, max_pixels=56 * 56),
                                 tokenizer=tokenizer, video_processor=Qwen2VLVideoProcessor(),
                                 chat_template=QWEN_CHAT_TEMPLATE)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}
    config = Qwen2VLConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
                     "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}},
        vision_config={"depth": 1, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "patch_size": 14,
                       "spatial_merge_size": 2, "temporal_patch_size": 2},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
    )
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(config)
    if teach:
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        batches = []
        for images, prompt, answer in teach:
            messages = [{"role": "user", "content": [*({"type": "image"} for _ in images), {"type": "text", "text": prompt}]}]
            text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            full = processor(text=[text + answer + "<|im_end|>"], images=[Image.fromarray(i) for i in images],
                             return_tensors="pt")
            prompt_len = processor(text=[text], images=[Image.fromarray(i) for i in images],
                                   return_tensors="pt")["input_ids"].shape[1]
            labels = full["input_ids"].clone()
            labels[:, :prompt_len] = -100
            batches.append((full, labels))
        model.train()
        for step in range(steps):
            full, labels = batches[step % len(batches)]
            loss = model(**full, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


class FakeEndpoint:
    """A real HTTP server speaking the OpenAI chat-completions protocol, with scripted behaviour."""

    def __init__(self):
        import uvicorn
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse

        self.mode, self.requests, self.in_flight, self.max_in_flight, self.fail_first = "answer", [], 0, 0, 0
        self.reply = "The cube is held above the table.\nANSWER: 4"
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            body = await request.json()
            self.requests.append({"body": body, "auth": request.headers.get("authorization")})
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await asyncio.sleep(0.05)
                if self.mode == "slow":
                    await asyncio.sleep(1.0)
                if self.fail_first > 0:
                    self.fail_first -= 1
                    return JSONResponse({"error": "overloaded"}, status_code=503)
                if self.mode == "bad-json":
                    return JSONResponse({"nothing": True})
                text = self.reply(body) if callable(self.reply) else self.reply
                return {"choices": [{"message": {"role": "assistant", "content": text}}]}
            finally:
                self.in_flight -= 1

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(5)
