# SPDX-License-Identifier: GPL-2.0
# kunit.py --qemu_config for the arm64 leg (see x86_64.py): QEMU's virt
# machine, started through dev/qemu/qemu-system-jq-aarch64.
from ..qemu_config import QemuArchParams

QEMU_ARCH = QemuArchParams(linux_arch='arm64',
			   kconfig='''
CONFIG_SERIAL_AMBA_PL011=y
CONFIG_SERIAL_AMBA_PL011_CONSOLE=y''',
			   qemu_arch='jq-aarch64',
			   kernel_path='arch/arm64/boot/Image.gz',
			   kernel_command_line='console=ttyAMA0',
			   extra_qemu_params=['-machine', 'virt'])
