#!/bin/sh
# Runs the kTLS tests in a VM whose kernel has kTLS, for machines whose own kernel has not
# (docs/ktls.md): ktls.rs's hand-over test, TlsTransport's, and the real server's 50 MB
# download over HTTPS (tests/test_tls.py; `make build` first, the VM runs the .venv's). On demand, not in
# CI. Needs root-free tools only: qemu-system-x86_64, busybox (static), cpio, depmod, and
# apt-get download of Debian's kernel package (`apt-get install qemu-system-x86
# busybox-static cpio kmod`).
#
#   benches/ktls_vm/run.sh            # 50 MiB for the first suite
#   FERRICORN_KTLS_MB=200 benches/ktls_vm/run.sh
#   KTLS_VM_ACCEL=kvm benches/ktls_vm/run.sh   # where nested KVM works (default: tcg)
#   KTLS_VM_PROFILE=release benches/ktls_vm/run.sh   # optimised test binary
#
# The host's / is shared read-only over 9p; the test runs in a chroot of it, so the test
# binary, its libraries and the repository are the host's, at the same paths.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${KTLS_VM_DIR:-$repo/target/ktls-vm}
accel=${KTLS_VM_ACCEL:-tcg}
mkdir -p "$work"
cd "$work"

# Debian's kernel (CONFIG_TLS=m), unpacked, with its module index.
if [ ! -d kernel/boot ]; then
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
    apt-get download "$pkg"
    dpkg-deb -x "$pkg"_*.deb kernel
    rm -f "$pkg"_*.deb
fi
release=$(ls kernel/lib/modules | head -n1)
[ -f "kernel/lib/modules/$release/modules.dep" ] || depmod -b "$work/kernel" "$release"
grep -q '^CONFIG_TLS=[ym]' "kernel/boot/config-$release"

# The initramfs: busybox, the modules needed to reach the host's files, /init.
rm -rf initrd && mkdir -p initrd/bin initrd/sbin initrd/mods initrd/host initrd/lib/modules
for d in proc sys dev tmp; do mkdir -p "initrd/$d"; done
cp "$(command -v busybox)" initrd/bin/busybox
for app in sh mount insmod modprobe cat echo chroot poweroff ip uname; do
    ln -s busybox "initrd/bin/$app"
done
ln -s ../bin/busybox initrd/sbin/modprobe
mods="kernel/lib/modules/$release/kernel"
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_legacy_dev \
         drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci net/9p/9pnet \
         net/9p/9pnet_virtio fs/netfs/netfs fs/fscache/fscache fs/9p/9p; do
    cp "$mods/$m.ko" initrd/mods/
done
cp "$here/init" initrd/init && chmod +x initrd/init
(cd initrd && find . | cpio -o -H newc --quiet) | gzip > initrd.gz

# The test binary, built here; the VM only runs it.
export PYO3_PYTHON=${PYO3_PYTHON:-$repo/.venv/bin/python}
# KTLS_VM_PROFILE=release: optimised, for the timings the test prints.
profile=; [ "${KTLS_VM_PROFILE:-}" = release ] && profile=--release
bin=$(cd "$repo" && cargo test $profile --lib --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "ferricorn":
        print(m["executable"])')
# A copy: a rebuild on the host while the VM boots would replace the file under it.
cp "$bin" "$work/ktls-tests" && bin=$work/ktls-tests
cat > guest.sh <<GUEST
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp
export FERRICORN_KTLS_MB=${FERRICORN_KTLS_MB:-50} PYTHONDONTWRITEBYTECODE=1
cd "$repo"
status=0
# The hand-over by itself: six suites, a file by sendfile, a refused KeyUpdate.
"$bin" --ignored --exact tls::ktls::tests::sendfile_over_ktls_reaches_a_rustls_client --nocapture || status=1
# Through TlsTransport, as the workers use it.
"$bin" --exact worker::tls::tests::a_session_handed_to_the_kernel_serves_as_rustls_would || status=1
# The real server (the .venv's build: make build first): a 50 MB file_wrapper download
# over HTTPS on both workers, by sha256, with the kernel counting the sessions it took.
echo "ktls-vm: /proc/net/tls_stat before the server: \$(tr -s ' \n' ' ' < /proc/net/tls_stat)"
.venv/bin/python -m pytest -p no:cacheprovider -q tests/test_tls.py -k 50_mb || status=1
echo "ktls-vm: /proc/net/tls_stat: \$(tr -s ' \n' ' ' < /proc/net/tls_stat)"
echo "ktls-vm: guest status \$status"
GUEST

case $accel in
    kvm) cpu="-accel kvm -cpu host" ;;
    *) cpu="-accel tcg,thread=multi -cpu max" ;;
esac
# shellcheck disable=SC2086
timeout "${KTLS_VM_TIMEOUT:-900}" qemu-system-x86_64 $cpu -m 2048 -smp 2 -nographic -no-reboot \
    -kernel "kernel/boot/vmlinuz-$release" -initrd initrd.gz \
    -append "console=ttyS0 quiet panic=-1 ktls_run=$work/guest.sh ktls_modules=$work/kernel/lib/modules" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    | tee console.log | grep -v -e SeaBIOS -e iPXE -e 'Booting from'
grep -q '^ktls-vm: guest status 0' console.log
