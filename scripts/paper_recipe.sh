#!/usr/bin/env bash
# The paper's recipe on real-data layouts, in its order: (1) the MIGR build on EMER + new FAU-matched DFEW clips
# with generated, judge-checked reasoning (Modality Importance and reordering on the merged set), (2) SFT on the
# reordered set, (3) GRPO from the SFT export on the build's rows (its rewards read the build's MI); then each
# stage's row counts.
#
#   scripts/paper_recipe.sh [WORK_DIR]        # no data given: writes the tiny fixtures (tests/fixtures/recipe.py)
#                                             # under WORK_DIR/fixtures and runs with tiny settings (CPU, ~1 min)
#   EMER_CSV=/data/EMER/emer_reasons.csv DFEW_ROOT=/data/DFEW DFEW_AU=/data/DFEW/openface \
#   MODEL=/ckpt/HumanOmni-7B REASONER=/ckpt/ERV-7B scripts/paper_recipe.sh runs_paper   # 8 GPUs, the paper's settings
#
# Settings from the environment: EMER_CSV, DFEW_ROOT, DFEW_AU (OpenFace csvs named after the clips), MODEL (the
# HumanOmni-layout checkpoint of MI and SFT), REASONER (the model writing the new clips' reasoning; default
# MODEL), MODEL_CONFIG (humanomni_7b), PYTHON (python), and extra Hydra overrides per stage in BUILD_ARGS,
# SFT_ARGS, GRPO_ARGS. Run from the repository root (a fresh clone with its environment installed).
set -euo pipefail

WORK=$(realpath -m "${1:-runs/paper_recipe}")
PYTHON=${PYTHON:-python}
MODEL_CONFIG=${MODEL_CONFIG:-humanomni_7b}
export MIGR_RUNS="$WORK/runs"
mkdir -p "$WORK"

if [[ -z "${EMER_CSV:-}" ]]; then
    echo "== writing the tiny fixtures to $WORK/fixtures"
    eval "$("$PYTHON" -m tests.fixtures.recipe "$WORK/fixtures" | sed 's/^/FIXTURE_/')"
    EMER_CSV=$FIXTURE_emer DFEW_ROOT=$FIXTURE_dfew DFEW_AU=$FIXTURE_dfew_au MODEL=$FIXTURE_checkpoint
    # tiny settings: CPU, one process, EMER's 4 rows all in train, 2 SFT steps, 1 GRPO step, short generations
    TINY_BUILD=(data.adapter.options.val_fraction=0 importance.batch_size=8 recipe.max_new_tokens=48)
    TINY_TRAIN=(trainer=cpu trainer.devices=1 model.dtype=float32 data.num_workers=0 data.adapter.options.val_fraction=0
                logger=csv trainer.enable_progress_bar=false)
    TINY_SFT=(stage.max_steps=2 data.batch_size=4)
    TINY_GRPO=(stage.max_steps=1 stage.batch_size=2 stage.max_new_tokens=16)
else
    : "${DFEW_ROOT:?set DFEW_ROOT}" "${DFEW_AU:?set DFEW_AU}" "${MODEL:?set MODEL}"
    TINY_BUILD=() TINY_TRAIN=(trainer=fsdp) TINY_SFT=() TINY_GRPO=()
fi
REASONER=${REASONER:-$MODEL}
BUILD="$MIGR_RUNS/migr"
DATA=(data=emer "data.root=$EMER_CSV")

echo "== 1. MIGR build: EMER + new FAU-matched DFEW clips -> MI -> reordering ($BUILD)"
"$PYTHON" -m src.migr.build "model_path=$MODEL" "${DATA[@]}" "out_dir=$BUILD" \
    fau.mode=new_clips +data@recipe.candidates.dfew=dfew "recipe.candidates.dfew.root=$DFEW_ROOT" \
    "recipe.candidates.dfew.au_dir=$DFEW_AU" recipe.source=model "recipe.model_path=$REASONER" \
    "${TINY_BUILD[@]}" ${BUILD_ARGS:-}

echo "== 2. SFT on the reordered set"
"$PYTHON" -m src.train experiment=paper_sft "model=$MODEL_CONFIG" "model.pretrained=$MODEL" "${DATA[@]}" \
    "stage.train_manifest=$BUILD/sft_manifest.jsonl" "${TINY_TRAIN[@]}" "${TINY_SFT[@]}" ${SFT_ARGS:-}

echo "== 3. GRPO from the SFT export; rewards read the build's MI"
"$PYTHON" -m src.train experiment=paper_grpo "model=$MODEL_CONFIG" "${DATA[@]}" \
    "stage.init_from=$MIGR_RUNS/sft/export" "stage.train_manifest=$BUILD/sft_manifest.jsonl" \
    "${TINY_TRAIN[@]}" "${TINY_GRPO[@]}" ${GRPO_ARGS:-}

echo "== row counts"
"$PYTHON" - "$BUILD/build.json" "$MIGR_RUNS/sft/data.json" "$MIGR_RUNS/grpo/data.json" <<'EOF'
import json
import sys

build, sft, grpo = (json.load(open(path)) for path in sys.argv[1:])
recipe = build["recipe"]["counts"]
counts = {
    "emer_rows": recipe["emer"],
    "dfew_candidates": recipe["candidates"],
    "fau_selected": recipe["fau_kept"],
    "fau_rejected": recipe["fau_rejected"],
    "reasoning_accepted": recipe["judge_accepted"],
    "reasoning_rejected": recipe["judge_rejected"] + recipe["reasoning_failed"],
    "merged_rows": recipe["merged"],
    "reordered_rows": build["reorder"]["samples"],
    "sft_rows": sft["rows"]["train"],
    "grpo_prompts": grpo["rows"]["train"],
}
for name, value in counts.items():
    print(f"{name:<20} {value}")
empty = [name for name, value in counts.items() if value == 0 and not name.endswith("rejected")]
if empty:
    sys.exit(f"stages with no rows: {', '.join(empty)}")
EOF
