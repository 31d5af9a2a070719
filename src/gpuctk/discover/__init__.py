"""Node discovery against a driver root and a dev root (stdlib only).

- :mod:`.nvsmi`     ``nvidia-smi -q -x`` parser (safe XML)
- :mod:`.elf`       ``DT_SONAME`` reader
- :mod:`.ldcache`   glibc ``ld.so.cache`` parser (old and new formats)
- :mod:`.procfs`    ``/proc/devices``, ``mig-minors``, GPU ``information``, NVRM version
- :mod:`.rootfs`    libraries, driver version, firmware, binaries, IPC sockets under a root
- :mod:`.devices`   device nodes through one replaceable ``stat_device``
- :mod:`.inventory` GPU inventory: NVML, procfs/sysfs, fixture JSON
- :mod:`.csvfiles`  Tegra CSV mount specs
"""
