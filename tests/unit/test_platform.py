from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from launcher.modelarts.platform import LOCAL, Platform, detect_platform

if TYPE_CHECKING:
    from launcher.modelarts.platform import PlatformKind


@pytest.mark.parametrize(
    ("environ", "kind", "evidence"),
    [
        ({"MA_VJ_NAME": "ma-job-1"}, "v2", ("MA_VJ_NAME",)),
        ({"MA_JOB_DIR": "/home/ma-user/modelarts/user-job-dir"}, "v2", ("MA_JOB_DIR",)),
        ({"VC_TASK_INDEX": "0"}, "v2", ("VC_TASK_INDEX",)),
        (
            {"MA_VJ_NAME": "j", "MA_JOB_DIR": "/d", "VC_TASK_INDEX": "1"},
            "v2",
            ("MA_VJ_NAME", "MA_JOB_DIR", "VC_TASK_INDEX"),
        ),
        ({"DLS_TASK_INDEX": "0"}, "v1", ("DLS_TASK_INDEX",)),
        ({"BATCH_JOB_ID": "job"}, "v1", ("BATCH_JOB_ID",)),
        ({"DLS_TASK_INDEX": "0", "BATCH_JOB_ID": "j"}, "v1", ("DLS_TASK_INDEX", "BATCH_JOB_ID")),
        # v2 wins when both generations' variables are present (migrated images)
        ({"DLS_TASK_INDEX": "0", "MA_VJ_NAME": "j"}, "v2", ("MA_VJ_NAME",)),
        ({}, "local", ()),
        ({"HOME": "/root", "MA_NUM_GPUS": "8"}, "local", ()),
        # an empty value does not count
        ({"MA_VJ_NAME": "", "BATCH_JOB_ID": ""}, "local", ()),
    ],
)
def test_detect(environ: dict[str, str], kind: PlatformKind, evidence: tuple[str, ...]) -> None:
    platform = detect_platform(environ)
    assert platform == Platform(kind, evidence)
    assert platform.on_modelarts == (kind != "local")


def test_frozen_and_describe() -> None:
    platform = detect_platform({"MA_VJ_NAME": "j"})
    with pytest.raises(AttributeError):
        platform.kind = "v1"
    assert platform.describe() == "ModelArts v2 (MA_VJ_NAME)"
    assert LOCAL.describe().startswith("not ModelArts")
    assert detect_platform({}) is LOCAL
