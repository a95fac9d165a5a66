"""One process racing others to promote its version: `python registry_racer.py BUCKET VERSION`.

Started by test_registry_trust against the session's moto server (the S3 settings come from
the environment, as in a pod). It waits for a start file so that every racer begins at
once, then promotes with a compare-and-set against whatever it last read, retrying on
ChampionMoved, and prints one JSON line: the version, whether it won, how often it lost.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ctrain.registry import ChampionMoved, Registry
from ctrain.storage import make_s3_client


def main(bucket: str, version: str, start: str) -> None:
    registry = Registry(make_s3_client(), bucket, "ctrain")
    while not Path(start).exists():
        time.sleep(0.005)
    lost = 0
    for _ in range(50):
        expected = registry.champion("race")
        try:
            registry.promote("race", version, expected=expected, reason="racer", by=version)
        except ChampionMoved:
            lost += 1
            continue
        print(json.dumps({"version": version, "won": True, "lost": lost}))
        return
    print(json.dumps({"version": version, "won": False, "lost": lost}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
