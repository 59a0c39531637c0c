# Shared by the tests in tests/vm: a Debian kernel (with nbd.ko) and a
# busybox initramfs, booted under QEMU.  These machines have no nbd module
# and KVM guests hang here, so the kernel's NBD client is tested inside an
# emulated (TCG) guest; see docs/testing.md.
#
# vm_kernel            sets VM_KERNEL (vmlinuz) and VM_MODULES (lib/modules/VER)
# vm_initramfs DIR OUT packs DIR (with /init) into OUT
# vm_add_binary DIR P  copies program P and the libraries ldd lists into DIR
# vm_boot INITRD LOG   boots, serial console into LOG; returns qemu's status

if [ "$(id -u)" -eq 0 ]; then
  VM_CACHE=${R3M_VM_CACHE:-/var/cache/r3map-vm}
else
  VM_CACHE=${R3M_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/r3map-vm}
fi

vm_kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}

vm_kernel() {
  local pkg ver
  pkg=$(vm_kernel_package)
  if [ -z "$pkg" ] && [ "$(id -u)" -eq 0 ]; then
    # A fresh machine may have no package lists yet.
    apt-get update -qq >/dev/null 2>&1 || true
    pkg=$(vm_kernel_package)
  fi
  [ -n "$pkg" ] || { echo "vm: cannot find Debian's kernel package (apt-cache depends linux-image-amd64)" >&2; return 1; }
  ver=${pkg#linux-image-}
  local dir=$VM_CACHE/$pkg
  if [ ! -f "$dir/boot/vmlinuz-$ver" ]; then
    mkdir -p "$VM_CACHE"
    local tmp
    tmp=$(mktemp -d "$VM_CACHE/dl.XXXXXX")
    # apt-get download drops privileges to _apt when it can; a directory
    # only root can write makes it warn and go on as root.
    (cd "$tmp" && apt-get download "$pkg" >/dev/null 2>&1) ||
      { echo "vm: apt-get download $pkg failed" >&2; rm -rf "$tmp"; return 1; }
    dpkg -x "$tmp"/"$pkg"_*.deb "$tmp/x"
    rm -rf "$dir"
    mv "$tmp/x" "$dir"
    rm -rf "$tmp"
  fi
  VM_KERNEL=$dir/boot/vmlinuz-$ver
  VM_MODULES=$dir/lib/modules/$ver
}

vm_add_binary() {
  local root=$1 prog=$2 lib
  mkdir -p "$root/bin" "$root/lib64" "$root/lib/x86_64-linux-gnu"
  cp "$prog" "$root/bin/"
  for lib in $(ldd "$prog" | awk '/=> \// {print $3} /^\t\/lib64/ {print $1}'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L -n "$lib" "$root$lib"
  done
}

vm_initramfs() {
  local root=$1 out=$2
  mkdir -p "$root/bin" "$root/sbin" "$root/proc" "$root/sys" "$root/dev" "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  local a
  for a in $(/bin/busybox --list); do
    [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
  done
  (cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$out"
}

vm_boot() {
  local initrd=$1 log=$2
  timeout "${VM_TIMEOUT:-300}" qemu-system-x86_64 -accel tcg,thread=multi \
    -cpu max -m 1024 -smp 2 -kernel "$VM_KERNEL" -initrd "$initrd" \
    -append "console=ttyS0 quiet panic=-1" -nographic -no-reboot \
    -net none > "$log" 2>&1
}
