#!/bin/bash
# capture-qemu-smbios.sh: boot Debian's cloud kernel in QEMU (TCG) with a
# busybox initramfs that prints the guest's raw SMBIOS tables and its
# /sys/class/dmi/id attributes, and store them as test data:
#   qemu-<name>.ep, qemu-<name>.dmi   (smbios_entry_point, DMI)
#   qemu-<name>.dmiid                 (name=value lines from /sys/class/dmi/id)
# Run from this directory; the outputs are committed, so tests need no VM.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kdir=$("$here/../../scripts/debpkg.sh" amd64 linux-image-cloud-amd64)
kernel=$(ls "$kdir"/boot/vmlinuz-*)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -n "${KEEP:-}" ] && trap - EXIT && echo "work dir $work" >&2
mkdir -p "$work/root/bin" "$work/root/sys" "$work/root/proc"
cp /usr/bin/busybox "$work/root/bin/busybox"
cat > "$work/root/init" <<'EOS'
#!/bin/busybox sh
/bin/busybox mount -t sysfs sysfs /sys
cd /sys/firmware/dmi/tables
echo "@@EP"; /bin/busybox base64 smbios_entry_point; echo "@@DMI"; /bin/busybox base64 DMI
echo "@@ID"
for f in sys_vendor product_name product_version product_family product_sku board_vendor board_name board_version product_serial product_uuid; do
  [ -r /sys/class/dmi/id/$f ] && echo "$f=$(/bin/busybox cat /sys/class/dmi/id/$f)"
done
echo "@@END"
/bin/busybox poweroff -f
EOS
chmod +x "$work/root/init"
(cd "$work/root" && find . | cpio -o -H newc --quiet | gzip -1 > "$work/initrd")

capture() { # name, qemu args...
	local name=$1; shift
	timeout 120 qemu-system-x86_64 -accel tcg -m 256 -nic none -nographic -no-reboot \
		-kernel "$kernel" -initrd "$work/initrd" -append "console=ttyS0 quiet panic=-1" \
		"$@" | tr -d '\r' > "$work/out"
	awk '/@@EP$/{f=1;next} /@@DMI$/{f=0} f' "$work/out" | base64 -d > "$here/qemu-$name.ep"
	awk '/@@DMI$/{f=1;next} /@@ID$/{f=0} f' "$work/out" | base64 -d > "$here/qemu-$name.dmi"
	awk '/@@ID$/{f=1;next} /@@END$/{f=0} f' "$work/out" > "$here/qemu-$name.dmiid"
	echo "captured qemu-$name: $(wc -c < "$here/qemu-$name.dmi") bytes of tables" >&2
}

# The e2e harness's shape: manufacturer kept, product and serial set.
capture q35-e2e -M q35 \
	-smbios type=1,manufacturer=QEMU,product=mcinit-e2e,version=1.0,serial=SN-0001,sku=SKU-7,family=mcinit-test,uuid=8c4f6b0e-1d2a-4e3b-9f5c-0a1b2c3d4e5f \
	-smbios type=2,manufacturer=QEMU-board,product=e2e-board,version=rev-B
# Defaults of the pc machine: nothing set by the user.
capture pc-default -M pc
# A ThinkPad's shape (family carries the generation), to match a real board.
capture thinkpad -M q35 \
	-smbios type=1,manufacturer=LENOVO,product=20KHCTO1WW,version="ThinkPad X1 Carbon 6th",family="ThinkPad X1 Carbon 6th",serial=PF1ABCDE,sku=LENOVO_MT_20KH_BU_Think_FM_ThinkPad\ X1\ Carbon\ 6th \
	-smbios type=2,manufacturer=LENOVO,product=20KHCTO1WW
