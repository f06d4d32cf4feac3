# SPDX-License-Identifier: GPL-2.0
# kunit.py --qemu_config for the arm64 leg (see x86_64.py): QEMU's virt
# machine, started through dev/qemu/qemu-system-jq-aarch64.
import os

from ..qemu_config import QemuArchParams


def _kconfig():
    """The leg's Kconfig lines, from dev/config/arm64.config."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "config", "arm64.config")) as f:
        return f.read()


QEMU_ARCH = QemuArchParams(linux_arch='arm64',
			   kconfig=_kconfig(),
			   qemu_arch='jq-aarch64',
			   kernel_path='arch/arm64/boot/Image.gz',
			   kernel_command_line='console=ttyAMA0',
			   extra_qemu_params=['-machine', 'virt'])
