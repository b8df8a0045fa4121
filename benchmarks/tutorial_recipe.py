"""The baseline: 3D segmentation trained the way MONAI's tutorials write it (spleen_segmentation_3d,
unet_segmentation_3d_ignite), on a prepared data folder of this project (its manifest's train/val split).

A plain ``Dataset`` + ``DataLoader`` with 2 worker processes re-reads the NIfTI files every epoch; the
network, loss, optimizer, schedule, patch and batch sizes and augmentations are the train step's defaults,
so only the way the work is done differs. It prints one line per validation, which ``benchmarks`` watches:

    epoch 8 val_mean_dice 0.9012 elapsed 47.9

    python -m benchmarks.tutorial_recipe --data outputs/<run>/preprocess --device cpu
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from monai import transforms as mt
from monai.data import DataLoader, Dataset, decollate_batch
from monai.inferers import sliding_window_inference
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric
from monai.networks.nets import UNet


def file_lists(folder: Path) -> tuple[list[dict[str, str]], list[dict[str, str]], int]:
    """Train and val image/label dictionaries and the number of classes, from the folder's manifest.json."""
    manifest = json.loads((folder / "manifest.json").read_text())
    cases = {c["id"]: c for c in manifest["cases"]}

    def records(split: str) -> list[dict[str, str]]:
        return [{"image": str(folder / cases[i]["image"]), "label": str(folder / cases[i]["label"])}
                for i in manifest["splits"][split]]
    return records("train"), records("val"), len(manifest["labels"])


def loaders(train_files: list[dict[str, str]], val_files: list[dict[str, str]]) -> tuple[DataLoader, DataLoader]:
    """The tutorials' data path: every epoch reads and prepares each volume again in 2 worker processes."""
    keys = ["image", "label"]
    load = [mt.LoadImaged(keys=keys), mt.EnsureChannelFirstd(keys=keys), mt.Orientationd(keys=keys, axcodes="RAS"),
            mt.NormalizeIntensityd(keys="image", channel_wise=True)]
    train_transforms = mt.Compose([
        *load,
        mt.SpatialPadd(keys=keys, spatial_size=(48, 48, 48)),
        mt.RandCropByPosNegLabeld(keys=keys, label_key="label", spatial_size=(48, 48, 48), pos=1, neg=1,
                                  num_samples=4, image_key="image", image_threshold=-1e9),
        mt.RandFlipd(keys=keys, prob=0.5, spatial_axis=0),
        mt.RandFlipd(keys=keys, prob=0.5, spatial_axis=1),
        mt.RandRotate90d(keys=keys, prob=0.5, spatial_axes=(0, 1)),
        mt.RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
        mt.RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
    ])
    train_loader = DataLoader(Dataset(train_files, train_transforms), batch_size=2, shuffle=True, num_workers=2)
    val_loader = DataLoader(Dataset(val_files, mt.Compose(load)), batch_size=1, num_workers=2)
    return train_loader, val_loader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a prepared data folder (holding manifest.json)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    train_files, val_files, num_classes = file_lists(args.data)

    train_loader, val_loader = loaders(train_files, val_files)

    model = UNet(spatial_dims=3, in_channels=1, out_channels=num_classes, channels=(16, 32, 64, 128),
                 strides=(2, 2, 2), num_res_units=2, norm="instance").to(device)
    loss_function = DiceCELoss(to_onehot_y=True, softmax=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-5)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    dice_metric = DiceMetric(include_background=False, reduction="mean")
    post_pred = mt.AsDiscrete(argmax=True, to_onehot=num_classes)
    post_label = mt.AsDiscrete(to_onehot=num_classes)

    for epoch in range(1, args.epochs + 1):
        model.train()
        data_wait = step_time = 0.0
        fetched = time.perf_counter()
        for batch in train_loader:
            ready = time.perf_counter()
            data_wait += ready - fetched
            inputs, labels = batch["image"].to(device), batch["label"].to(device)
            optimizer.zero_grad()
            loss = loss_function(model(inputs), labels)
            loss.backward()
            optimizer.step()
            fetched = time.perf_counter()
            step_time += fetched - ready
        scheduler.step()
        print(f"epoch {epoch} loss {loss.item():.4f} data_wait {data_wait:.2f} step {step_time:.2f}", flush=True)
        if epoch % 2 == 0 or epoch == args.epochs:
            model.eval()
            with torch.no_grad():
                for batch in val_loader:
                    image, label = batch["image"].to(device), batch["label"].to(device)
                    outputs = sliding_window_inference(image, (48, 48, 48), 4, model, overlap=0.25, mode="gaussian")
                    dice_metric(y_pred=[post_pred(o) for o in decollate_batch(outputs)],  # type: ignore[misc]
                                y=[post_label(lbl) for lbl in decollate_batch(label)])  # type: ignore[misc]
            mean_dice = float(dice_metric.aggregate())  # type: ignore[arg-type]
            print(f"epoch {epoch} val_mean_dice {mean_dice:.4f} "
                  f"elapsed {time.perf_counter() - started:.1f}", flush=True)
            dice_metric.reset()


if __name__ == "__main__":
    main()
