#!/bin/sh
# /init of the baseline initramfs: a classic busybox script doing the job of
# mcinit's production boot (modules, verity root, a PCR measurement,
# switch_root). build.sh fills in /etc/bbinit.conf (module order, the
# verity table's fixed fields, the root hash).
export PATH=/sbin:/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
exec </dev/console >/dev/console 2>&1

log() { echo "bbinit: $*" >/dev/kmsg; }
fail() {
	echo "bbinit: refusing to boot: $*" >/dev/kmsg
	echo "bbinit: refusing to boot: $*"
	halt -f
	while :; do sleep 3600; done
}

. /etc/bbinit.conf
log "start"

# bbinit.verbose on the command line logs each module (for analysis).
read -r cmdline </proc/cmdline
verbose=
case " $cmdline " in *" bbinit.verbose "*) verbose=1 ;; esac

# Modules, in dependency order (insmod does not resolve dependencies).
for m in $MODULES; do
	insmod "/lib/modules/$RELEASE/$m" || fail "insmod $m"
	[ -z "$verbose" ] || log "insmod $m"
done
log "modules loaded"

# The root's data and hash partitions, by GPT partition name, waiting at
# most ~10 s for the disk to appear.
tries=0
while :; do
	data=
	hash=
	for u in /sys/class/block/*/uevent; do
		[ -r "$u" ] || continue
		dev=
		part=
		while IFS='=' read -r k v; do
			case $k in
			DEVNAME) dev=$v ;;
			PARTNAME) part=$v ;;
			esac
		done <"$u"
		case $part in
		"$DATA_LABEL") data=/dev/$dev ;;
		"$HASH_LABEL") hash=/dev/$dev ;;
		esac
	done
	[ -n "$data" ] && [ -n "$hash" ] && break
	tries=$((tries + 1))
	[ $tries -gt 400 ] && fail "no partitions $DATA_LABEL and $HASH_LABEL"
	usleep 25000
done
log "root partitions $data $hash"

# dm-verity with the root hash baked into the image.
DM_DISABLE_UDEV=1 dmsetup create --readonly --noudevsync bbroot \
	--table "0 $DATA_SECTORS verity 1 $data $hash $DATA_BLOCK_SIZE $HASH_BLOCK_SIZE $DATA_BLOCKS $HASH_START $HASH_ALG $ROOT_HASH $SALT" ||
	fail "dmsetup create"
mkdir -p /newroot
mount -t "$ROOT_FSTYPE" -o ro /dev/mapper/bbroot /newroot || fail "mounting the verity root"
log "root mounted"

# Measure what was booted into PCR $PCR (sha256 bank) with raw TPM2_PCR_Extend
# commands, as many events as mcinit records.
extend() {
	d=$(printf '%s' "$1" | sha256sum)
	d=${d%% *}
	x=$(echo "$d" | sed 's/../\\x&/g')
	exec 3<>/dev/tpm0 || return 1
	# TPM_ST_SESSIONS, size 65, TPM_CC_PCR_Extend, PCR handle, a password
	# session, one sha256 digest.
	printf "\x80\x02\x00\x00\x00\x41\x00\x00\x01\x82\x00\x00\x00\\x$PCR_HEX\x00\x00\x00\x09\x40\x00\x00\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x0b$x" >&3
	rc=$(dd bs=4096 count=1 <&3 2>/dev/null | od -An -tx1 -j6 -N4 | tr -d ' \n')
	exec 3>&-
	[ "$rc" = 00000000 ] || return 1
}
if [ -c /dev/tpm0 ]; then
	for ev in "config $MODULES" "keys" "board" "decision production" "root $ROOT_HASH" "separator"; do
		extend "$ev" || fail "extending PCR $PCR"
	done
	log "measured into PCR $PCR"
elif [ "$TPM_REQUIRED" = 1 ]; then
	fail "no TPM"
fi

for d in dev proc sys run; do
	mount --move "/$d" "/newroot/$d" || fail "moving /$d"
done
echo "bbinit: switch_root" >/newroot/dev/kmsg
exec switch_root /newroot /sbin/init
