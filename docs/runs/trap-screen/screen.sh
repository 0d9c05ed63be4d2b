#!/usr/bin/env bash
# Short runs (800 k env steps) to see whether a run falls into the -21 trap: default vs --ent-coef 0.03.
export PYTHONPATH=/work/runpkg
cd /work/runs/screen
for seed in 3 4 5 6 7; do
  for ent in 0.03 0.01; do
    [ "$seed" = 3 ] && [ "$ent" = 0.01 ] && continue  # the default's seed 3 is v09-s3
    name=ent$ent-s$seed
    python -m fastpg train --run-dir $name --seed $seed --max-steps 800000 --workers 2 --ent-coef $ent > $name.log 2>&1
    echo "$name $(tail -1 $name/metrics.csv | cut -d, -f1,2,4,6,7,8)" >> summary.txt
  done
done
python -m fastpg eval /work/runs/v09-s3 --games 20 --json --workers 2 > /work/runs/v09-s3.eval.json 2>> /work/runs/v09-s3.log
echo done >> summary.txt
