#!/usr/bin/env bash
# Reproduces srlab's bundled weights (src/srlab/weights/rdsr_s_x{2,3,4}.safetensors).
#
#   bash scripts/train_bundled.sh                # proxy data set, as bundled (see docs/model_card.md)
#   TRAIN_DIR=DIV2K/DIV2K_train_HR VAL_DIR=DIV2K/DIV2K_valid_HR EPOCHS_X2=300 EPOCHS_X34=150 \
#       bash scripts/train_bundled.sh            # the same recipe on DIV2K
#
# x2 trains from srlab's interpolator init; x3 and x4 warm-start from the x2 weights (everything but
# the upsampling conv). Adam + L1, cosine schedule, EMA 0.999; the EMA weights of the last epoch are
# what ships (validation only monitors, so the reported val scores are not picked on the val split).
set -euo pipefail
cd "$(dirname "$0")/.."

SRLAB=${SRLAB:-.venv/bin/srlab}
SHARED=${SHARED:-../shared}
DATA=${DATA:-data/wallpaper}
TRAIN_DIR=${TRAIN_DIR:-$DATA/train}
VAL_DIR=${VAL_DIR:-$DATA/val}
RUNS=${RUNS:-runs/bundled}
MODEL=${MODEL:-rdsr_s}
EPOCHS_X2=${EPOCHS_X2:-40}
EPOCHS_X34=${EPOCHS_X34:-25}
REPEAT=${REPEAT:-40}
DEVICE=${DEVICE:-auto}

if [ ! -d "$TRAIN_DIR" ]; then
    # The proxy set: ~50 2K photos from Debian's wallpaper packages (needs apt-get and Pillow).
    PATH="$PWD/.venv/bin:$PATH" bash "$SHARED/datasets/make_wallpaper_photos.sh" "$DATA"
fi

common=(--train_dir "$TRAIN_DIR" --val_dir "$VAL_DIR" --model "$MODEL" --batch_size 16 --lr 1e-3
        --device "$DEVICE" --set data.repeat="$REPEAT" --set ema_decay=0.999 --set val_every=5)

"$SRLAB" train "${common[@]}" --scale 2 --patch_size 96 --epochs "$EPOCHS_X2" --out "$RUNS/x2"
for scale in 3 4; do
    "$SRLAB" train "${common[@]}" --scale "$scale" --patch_size $((48 * scale)) --epochs "$EPOCHS_X34" \
        --init_from "$RUNS/x2/last.safetensors" --out "$RUNS/x$scale"
done

mkdir -p src/srlab/weights
for scale in 2 3 4; do
    cp "$RUNS/x$scale/last.safetensors" "src/srlab/weights/${MODEL}_x$scale.safetensors"
done
for scale in 2 3 4; do
    "$SRLAB" eval --model bicubic --scale "$scale" --data "$VAL_DIR" --quiet | tail -n 1
    "$SRLAB" eval --model "$MODEL" --scale "$scale" --data "$VAL_DIR" --quiet | tail -n 1
done
