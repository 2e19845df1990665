#!/usr/bin/env bash
# One recording corrected in three segments through a real scheduler, compared with the local,
# unsplit run of the same recording.
#
#   bash .ci/clusters/segments_check.sh REPO_ROOT WORKDIR [PROFILE]
#     PROFILE  a profile name or path for --profile (default: slurm)
#
# Writes a 96-frame 64 x 64 recording, runs Stage 1 locally and unsplit (pyflowreg-session
# --stage 1), then Stage 1 through the scheduler with segment_frames 32 (a preparation job,
# three segment jobs, a join), and compares every Stage 1 result file: movies and masks
# exactly; float sums (temporal average, QC numbers) to 1e-9, since the join adds the
# segments' sums in another order.
set -euo pipefail
REPO=$(cd "$1" && pwd)
WORK=$2
PROFILE=${3:-slurm}
mkdir -p "$WORK/local/data" "$WORK/split"
python - "$WORK/local/data" <<'PY'
import sys
from pyflowreg.synthetic import make_session, write_session
write_session(make_session(1, 64, 64, 96, seed=4), sys.argv[1], pattern="rec_{:02d}.tif")
PY
cp -r "$WORK/local/data" "$WORK/split/data"
cat >"$WORK/local/config.yaml" <<'YAML'
root: data
pattern: "rec_*.tif"
quality_setting: balanced
demo: {enabled: false}
YAML
cp "$WORK/local/config.yaml" "$WORK/split/config.yaml"
echo "segment_frames: 32" >>"$WORK/split/config.yaml"

(cd "$WORK/local" && pyflowreg-session config.yaml --stage 1) \
  >"$WORK/local.log" 2>&1 || { tail -n 40 "$WORK/local.log"; echo "local unsplit run failed"; exit 1; }
(cd "$WORK/split" && timeout -s INT -k 20 900 \
  snakemake -s "$REPO/Snakefile" --configfile config.yaml --profile "$PROFILE" \
  data/compensated_outputs/rec_00/status.json) \
  >"$WORK/split.log" 2>&1 || { tail -n 60 "$WORK/split.log"; echo "split run through $PROFILE failed"; exit 1; }

submitted=$(grep -cE "has been submitted|external jobid" "$WORK/split.log" || true)
segments=$(grep -c "rule compensate_segment:" "$WORK/split.log" || true)
python - "$WORK/split/data/compensated_outputs/rec_00/status.json" <<'PY'
import json, sys
split = json.load(open(sys.argv[1]))["segments"]
assert split["count"] == 3 and split["join"] == "virtual", split
print(f"status.json: {split['count']} segments of {split['segment_frames']} frames, "
      f"joined as {split['join']} datasets")
PY
echo "split run: $segments segment jobs, $submitted jobs submitted to $PROFILE"
[ "$segments" -eq 3 ] || { echo "expected 3 segment jobs"; exit 1; }
[ "$submitted" -eq 5 ] || { echo "expected the jobs to go through $PROFILE"; exit 1; }
python "$REPO/.ci/clusters/compare_outputs.py" --float-rtol 1e-9 \
  "$WORK/local/data/compensated_outputs" "$WORK/split/data/compensated_outputs"
