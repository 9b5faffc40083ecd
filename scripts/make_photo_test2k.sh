#!/usr/bin/env bash
# Builds a 2K test set of photographs from Debian's lomiri-wallpapers packages (the Ubuntu community
# wallpaper contests; CC-BY / CC-BY-SA / CC0, see each package's copyright file). None of these photos
# is in the wallpaper proxy training set (../shared/datasets/make_wallpaper_photos.sh uses
# plasma-workspace-wallpapers, ukui-wallpapers and mate-backgrounds), so srlab's own networks, trained
# on that set, can be tested on them.
#
#   scripts/make_photo_test2k.sh OUT_DIR
#
# OUT_DIR/HR/*.png  13 photographs (the illustrations, gradients and patterns of the packages and the one
#                   photo under 2040 px are left out), long side reduced to 2040 px like DIV2K (Pillow bicubic,
#                   as the proxy set), cropped to a multiple of 12, PNG.
#
# Needs: apt-get (run `apt-get update` once first), dpkg, python3 with Pillow (or PYTHON=.venv/bin/python). ~30 MB of .deb downloads.
set -euo pipefail
out=${1:?usage: make_photo_test2k.sh OUT_DIR}
mkdir -p "$out/HR"
out=$(cd "$out" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -q lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 >/dev/null)
for d in "$tmp"/*.deb; do dpkg -x "$d" "$tmp/x"; done
"${PYTHON:-python3}" - "$tmp/x/usr/share/backgrounds" "$out/HR" <<'PY'
import sys
from PIL import Image
src, out = sys.argv[1], sys.argv[2]
photos = ["Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Kleiber_by_Lukas_Baubkus",
          "Picture_0B_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
          "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich",
          "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
          "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi"]
for name in photos:
    im = Image.open(f"{src}/{name}.jpg").convert("RGB")
    k = 2040 / max(im.size)
    im = im.resize((round(im.size[0] * k), round(im.size[1] * k)), Image.BICUBIC)
    w, h = im.size[0] // 12 * 12, im.size[1] // 12 * 12
    im.crop((0, 0, w, h)).save(f"{out}/{name.split('_by_')[0]}.png")
print(f"{len(photos)} photographs in {out}")
PY
