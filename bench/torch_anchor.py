"""The PyTorch anchor of bench:gpu: what a plain PyTorch script does on the same GPU with the same JPEGs.

A cached-feature pipeline as a PyTorch user writes it: a DataLoader with one worker per core
decodes and resizes (shorter side 256, centre crop 224, ImageNet normalisation), one ResNet50 pass
in bf16 channels-last gives the 2,048-d pooled features of every image, then a linear head is
trained for 30 epochs on the cached features (AdamW, batch 256). Also the raw inference speed of
the same network (random weights: the architecture and FLOPs are what matter) at the batch sizes
bench:gpu reports. Prints one JSON document.

Usage: python3 bench/torch_anchor.py --root DIR [--quick]   (DIR: the dogImages layout, {train,valid,test}/NNN.Breed/*.jpg)
"""
import argparse
import json
import os
import time

import torch
import torchvision
from torch.utils.data import DataLoader, Dataset
from torchvision.io import ImageReadMode, decode_jpeg, read_file
from torchvision.transforms.v2 import functional as F

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class Images(Dataset):
    def __init__(self, root):
        self.items = []
        classes = sorted({c for s in ("train", "valid", "test") if os.path.isdir(os.path.join(root, s)) for c in os.listdir(os.path.join(root, s))})
        for split in ("train", "valid", "test"):
            base = os.path.join(root, split)
            if not os.path.isdir(base):
                continue
            for c in sorted(os.listdir(base)):
                for f in sorted(os.listdir(os.path.join(base, c))):
                    self.items.append((os.path.join(base, c, f), classes.index(c), split))
        self.classes = len(classes)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label, _ = self.items[i]
        img = decode_jpeg(read_file(path), mode=ImageReadMode.RGB)
        img = F.resize(img, 256, antialias=True)
        img = F.center_crop(img, 224)
        return img, label


def sync():
    torch.cuda.synchronize()


def raw_speed(model, batch, dtype, seconds):
    x = torch.randn(batch, 3, 224, 224, device="cuda").to(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
        for _ in range(3):
            model(x)
        sync()
        n = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            model(x)
            n += batch
        sync()
        return n / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    cores = os.cpu_count() or 1
    model = torchvision.models.resnet50(weights=None)
    model.fc = torch.nn.Identity()
    model = model.cuda().eval().to(memory_format=torch.channels_last)
    data = Images(args.root)

    # warm-up: cuDNN picks its kernels and the workers start once, outside the timed pass
    raw_speed(model, 256, torch.bfloat16, 0.5)

    # the cached-feature pipeline: one bf16 channels-last pass over every image
    start = time.perf_counter()
    loader = DataLoader(data, batch_size=256, num_workers=cores, pin_memory=True, persistent_workers=False, prefetch_factor=4)
    feats, labels = [], []
    mean, std = MEAN.cuda(), STD.cuda()
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        for imgs, y in loader:
            x = imgs.cuda(non_blocking=True).float().div_(255).sub_(mean).div_(std).contiguous(memory_format=torch.channels_last)
            feats.append(model(x).float())
            labels.append(y.cuda(non_blocking=True))
    sync()
    feature_seconds = time.perf_counter() - start
    feats = torch.cat(feats)
    labels = torch.cat(labels)
    train = torch.tensor([s == "train" for _, _, s in data.items], device="cuda")

    # the head: a linear layer, 30 epochs of AdamW on the cached train features
    start = time.perf_counter()
    head = torch.nn.Linear(feats.shape[1], data.classes).cuda()
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3)
    x, y = feats[train], labels[train]
    for _ in range(30):
        perm = torch.randperm(x.shape[0], device="cuda")
        for i in range(0, x.shape[0], 256):
            idx = perm[i : i + 256]
            loss = torch.nn.functional.cross_entropy(head(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    sync()
    head_seconds = time.perf_counter() - start

    seconds = 1.0 if args.quick else 3.0
    raw = {
        "bf16_batch256": raw_speed(model, 256, torch.bfloat16, seconds),
        "bf16_batch32": raw_speed(model, 32, torch.bfloat16, seconds),
        "fp32_batch256": raw_speed(model, 256, torch.float32, seconds),
        "fp32_batch32": raw_speed(model, 32, torch.float32, seconds),
    }
    print(json.dumps({
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0),
        "cores": cores,
        "images": len(data),
        "featureSeconds": feature_seconds,
        "featureImagesPerSecond": len(data) / feature_seconds,
        "headSeconds": head_seconds,
        "totalSeconds": feature_seconds + head_seconds,
        "rawImagesPerSecond": raw,
    }))


if __name__ == "__main__":
    main()
