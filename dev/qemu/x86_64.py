# SPDX-License-Identifier: GPL-2.0
# kunit.py --qemu_config for the x86_64 leg. QEMU itself is started through
# dev/qemu/qemu-system-jq-x86_64 (on PATH while the harness runs), which
# replaces kunit.py's fixed "-accel kvm -accel hvf -accel tcg" and "-m 1024"
# with the harness's accelerator, memory and CPU count.
import os

from ..qemu_config import QemuArchParams


def _kconfig():
    """The leg's Kconfig lines, from dev/config/x86_64.config."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "config", "x86_64.config")) as f:
        return f.read()


QEMU_ARCH = QemuArchParams(linux_arch='x86_64',
			   kconfig=_kconfig(),
			   qemu_arch='jq-x86_64',
			   kernel_path='arch/x86/boot/bzImage',
			   kernel_command_line='console=ttyS0',
			   extra_qemu_params=['-bios', 'qboot.rom'])
