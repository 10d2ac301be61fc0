"""The fixed values of ModelArts custom images and training jobs, in one place.

Every module that needs the platform's user, home, conda roots, default port or channel names reads them
here (the sources are the ModelArts documents on custom images and distributed training).
"""

from __future__ import annotations

#: The new training service's default user, group and home; boot commands must run from the home.
USER = "ma-user"
UID = 1000
GID = 100
HOME = "/home/ma-user"

#: The old training service's user, and the UID of images migrated from it.
V1_USER = "work"
V1_UID = 1101
MIGRATED_UID = 1102

#: Where conda is installed in ModelArts images when ANACONDA_DIR does not say, in order.
CONDA_ROOTS = (HOME + "/anaconda3", HOME + "/miniconda3", "/opt/conda")
#: Where ``ma-launch pack`` puts an env in an image by default: ``<root>/envs/<name>``.
DEFAULT_CONDA_ROOT = CONDA_ROOTS[0]

#: MASTER_PORT of Huawei's distributed-training template.
MASTER_PORT = 6060

#: The channel arguments the platform appends when MA_INPUTS/MA_OUTPUTS do not name them.
CHANNEL_NAMES = ("data_url", "train_url")

#: Image size limits (bytes): the new service's limit and recommendation, and the old service's limit.
GB = 1000**3
SIZE_LIMIT = 30 * GB
SIZE_RECOMMENDED = 15 * GB
SIZE_LIMIT_V1 = int(9.5 * GB)

#: Where the platform mounts the node's GPU driver into the container at run time.
DRIVER_DIR = "/usr/local/nvidia"

#: Ascend: the platform mounts the NPU driver at ASCEND_DRIVER_DIR at run time (an image must not bake one
#: in); the CANN toolkit and its ATB add-on install below ASCEND_DIR, each with a ``set_env.sh`` to source.
ASCEND_DIR = "/usr/local/Ascend"
ASCEND_DRIVER_DIR = ASCEND_DIR + "/driver"
CANN_TOOLKIT_DIR = ASCEND_DIR + "/ascend-toolkit"
CANN_ATB_DIR = ASCEND_DIR + "/nnal/atb"
#: Where an installed toolkit says it is (its directory, or its ``latest``).
CANN_HOME_VARIABLE = "ASCEND_TOOLKIT_HOME"
CANN_SET_ENV = "set_env.sh"

#: Where device nodes are, and the names of accelerator devices in it: GPUs (``nvidia0``…, ``nvidiactl``,
#: ``nvidia-uvm``) and Ascend NPUs (``davinci0``…, ``davinci_manager``); the numbered ones are the cards.
#: ``MA_LAUNCH_DEVICE_ROOT`` points ma-launch at another directory (tests).
DEVICE_ROOT = "/dev"
#: The variables that list the visible accelerators, in the order they decide: GPUs, then Ascend NPUs.
VISIBLE_GPU_VARIABLES = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")
VISIBLE_NPU_VARIABLES = ("ASCEND_RT_VISIBLE_DEVICES", "ASCEND_VISIBLE_DEVICES")
ACCELERATOR_PREFIXES = ("nvidia", "davinci")
DEVICE_ROOT_VARIABLE = "MA_LAUNCH_DEVICE_ROOT"

#: The variables the platform sets when it runs the boot command again: on restart after a suspension or
#: in-place fault recovery (``MA_PROC_START_CNT``) and when the job is scheduled again
#: (``MA_SCHEDULE_CNT``). Read as counts that include the current start (1 = the first); unverified.
START_COUNT = "MA_PROC_START_CNT"
SCHEDULE_COUNT = "MA_SCHEDULE_CNT"
