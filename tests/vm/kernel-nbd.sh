#!/usr/bin/env bash
# The Linux kernel's NBD client (nbd.ko, nbd-client) against r3map serve,
# inside a QEMU guest: these machines have no nbd module.  Usage:
#   tests/vm/kernel-nbd.sh R3MAP
# The checks themselves are in kernel-nbd-init.sh (the guest's /init).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
r3map=$1
. "$here/vm-lib.sh"

for p in qemu-system-x86_64 /bin/busybox cpio nbd-client; do
  command -v "$p" >/dev/null || { echo "kernel-nbd: $p is missing (scripts/deps.sh test installs it)" >&2; exit 1; }
done
vm_kernel

work=$(mktemp -d /tmp/r3m-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"
vm_add_binary "$root" "$r3map"
vm_add_binary "$root" "$(command -v nbd-client)"
cp "$VM_MODULES/kernel/drivers/block/nbd.ko" "$root/nbd.ko"
cp "$here/kernel-nbd-init.sh" "$root/init"
chmod +x "$root/init"
vm_initramfs "$root" "$work/initrd.gz"

start=$(date +%s)
status=0
vm_boot "$work/initrd.gz" "$work/console.log" || status=$?
grep -a 'R3M-VM' "$work/console.log" | tr -d '\r' || true
passed=$(grep -a -c 'R3M-VM PASS' "$work/console.log" || true)
failed=$(grep -a -c 'R3M-VM FAIL' "$work/console.log" || true)
echo "kernel-nbd: guest ran $(( $(date +%s) - start )) s: $passed checks passed, $failed failed"
if ! grep -a -q 'R3M-VM DONE' "$work/console.log"; then
  echo "kernel-nbd: the guest did not finish (qemu status $status); last console lines:" >&2
  tail -20 "$work/console.log" >&2
  exit 1
fi
[ "$failed" -eq 0 ] && [ "$passed" -ge 20 ]
