"""Names the generator accepts (no imports: the CLI parser and the JIT path use them)."""

MODES = ("auto", "nvml", "management", "csv", "wsl", "gds", "mofed", "gdrcopy", "nvswitch", "imex")
NAME_STRATEGIES = ("index", "uuid", "type-index")
HOOK_NAMES = (
    "create-symlinks",
    "update-ldcache",
    "enable-cuda-compat",
    "disable-device-node-modification",
    "update-application-profile",
    "chmod",
)
FEATURE_FLAGS = (
    "no-additional-gids-for-device-nodes",
    "disable-ipc-discoverer",
    "enable-explicit-driver-libraries",
    "disable-nvsandboxutils",
    "disable-nvsandbox-utils",
    "enable-coherent-annotations",
    "disable-multiple-csv-devices",
)
CSV_DEFAULT_DIR = "/etc/nvidia-container-runtime/host-files-for-container.d"
CSV_BASE_FILES = ("devices.csv", "drivers.csv", "l4t.csv")
