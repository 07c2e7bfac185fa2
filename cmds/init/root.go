package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/dmverity"
	"github.com/mcinit/mcinit/handoff"
	"github.com/mcinit/mcinit/measure"
	"github.com/mcinit/mcinit/mkfs"
	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/rootfs"
)

const (
	newRoot  = "/newroot"
	lowerDir = handoff.Dir + "/lower"   // the verified image, read-only
	upperFS  = handoff.Dir + "/upperfs" // tmpfs or the persistent partition
	upperDir = handoff.Dir + "/upper"   // symlink to the overlay's upperdir
	dmName   = "mcinit-root"
	// defaultRootWait bounds the wait for the root disk when the board
	// says nothing.
	defaultRootWait = 10 * time.Second
)

type rootResult struct {
	description string
	rootHash    string
	event       measure.Event
}

// setupRoot builds the root the decision selected. Its measurement event is
// recorded by the caller before anything from the root runs.
func (b *boot) setupRoot() (rootResult, error) {
	pol := b.verified.Policy
	if b.decision.Profile == decide.Production {
		dev, root, err := b.openVerity(pol)
		if err != nil {
			return rootResult{}, err
		}
		fstype, err := rootfs.MountReadOnly(dev, newRoot)
		if err != nil {
			return rootResult{}, refusef("mounting the verified root: %v", err)
		}
		b.log.Printf("root: %s (%s, read-only, dm-verity %s)", dev, fstype, root.RootHash[:16])
		return rootResult{
			description: fmt.Sprintf("verity:%s %s ro", root.Name, fstype),
			rootHash:    root.RootHash,
			event:       measure.RootEvent(measure.Root{Kind: measure.RootVerity, RootHash: root.RootHash}),
		}, nil
	}
	// Development-only modules (overlayfs, the upper's filesystem) load
	// after the decision was measured; production never has them.
	if err := b.loadBoardModules(string(decide.Development)); err != nil {
		return rootResult{}, err
	}
	return b.developmentRoot(pol)
}

// openVerity finds the first accepted root (policy order) whose data and
// hash partitions are present and opens it with the policy's root hash.
func (b *boot) openVerity(pol *policy.Policy) (string, policy.Root, error) {
	if len(pol.Production.Roots) == 0 {
		return "", policy.Root{}, refusef("policy lists no production root")
	}
	for _, name := range []string{"root", "roothash", "systemd.verity_root_data", "systemd.verity_root_hash"} {
		for _, p := range b.cl.Lookup(name) {
			b.warn("ignoring %s=%s from the command line: the root comes from the signed policy", name, p.Value)
		}
	}
	wait := defaultRootWait
	if b.board.Quirks.RootWait > 0 {
		wait = time.Duration(b.board.Quirks.RootWait) * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	sc := rootfs.DefaultScanner()
	var lastErr error
	for {
		parts, err := sc.Scan()
		if err != nil {
			lastErr = err
		}
		for _, r := range pol.Production.Roots {
			data, hash, err := selectVerity(r, parts)
			if err == nil {
				want, err := dmverity.ExpectedFromPolicy(r)
				if err != nil {
					return "", r, refusef("root %q: %v", r.Name, err)
				}
				dev, err := dmverity.Open(dmName, data.Dev, hash.Dev, want, pol.Production.VerityError)
				if err != nil {
					return "", r, refusef("opening dm-verity root %q on %s: %v", r.Name, data.Dev, err)
				}
				return dev, r, nil
			}
			if !errors.Is(err, rootfs.ErrNotFound) {
				return "", r, refusef("root %q: %v", r.Name, err)
			}
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return "", policy.Root{}, refusef("no accepted root image found after %v: %v", wait, lastErr)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func selectVerity(r policy.Root, parts []rootfs.BlockPartition) (data, hash rootfs.BlockPartition, err error) {
	var dsel, hsel rootfs.Selector
	if r.DataPartLabel != "" {
		dsel = rootfs.Selector{Label: r.DataPartLabel}
		hsel = rootfs.Selector{Label: r.HashPartLabel}
	} else {
		du, hu, err := rootfs.VerityUUIDs(r.RootHash)
		if err != nil {
			return data, hash, err
		}
		dsel = rootfs.Selector{UUID: &du}
		hsel = rootfs.Selector{UUID: &hu}
		if t, err := rootfs.RootType(runtime.GOARCH); err == nil {
			dsel.Type = &t
		}
		if t, err := rootfs.VerityType(runtime.GOARCH); err == nil {
			hsel.Type = &t
		}
	}
	if data, err = rootfs.Find(parts, dsel); err != nil {
		return data, hash, err
	}
	hash, err = rootfs.Find(parts, hsel)
	return data, hash, err
}

// developmentRoot mounts the image (verity-checked unless the policy says
// otherwise) as the overlay's lower and tmpfs or a persistent partition as
// its upper.
func (b *boot) developmentRoot(pol *policy.Policy) (rootResult, error) {
	dev := pol.Development
	var lowerDev, rootHash, lowerDesc string
	if dev.VerifiesLower() {
		d, r, err := b.openVerity(pol)
		if err != nil {
			return rootResult{}, err
		}
		lowerDev, rootHash, lowerDesc = d, r.RootHash, "verity:"+r.Name
	} else {
		// Unverified lower: the first accepted root's data partition.
		parts, err := rootfs.DefaultScanner().Scan()
		if err != nil {
			return rootResult{}, refusef("%v", err)
		}
		var found bool
		for _, r := range pol.Production.Roots {
			if d, _, err := selectVerity(r, parts); err == nil {
				lowerDev, rootHash, lowerDesc, found = d.Dev, r.RootHash, "unverified:"+r.Name, true
				break
			}
		}
		if !found {
			return rootResult{}, refusef("no root image found for the development lower")
		}
	}
	if _, err := rootfs.MountReadOnly(lowerDev, lowerDir); err != nil {
		return rootResult{}, refusef("mounting the development lower: %v", err)
	}
	upperDesc := "tmpfs"
	mroot := measure.Root{Kind: measure.RootOverlay, Upper: "tmpfs"}
	if dev.VerifiesLower() {
		mroot.RootHash = rootHash
	}
	if dev.Upper == "partition" {
		// Bounded like the root: a missing partition must refuse, not hang.
		wait := defaultRootWait
		if b.board.Quirks.RootWait > 0 {
			wait = time.Duration(b.board.Quirks.RootWait) * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		parts, err := rootfs.DefaultScanner().WaitFor(ctx, rootfs.Selector{Label: dev.UpperPartLabel})
		cancel()
		if errors.Is(err, rootfs.ErrNotFound) {
			return rootResult{}, refusef("development upper partition %q: no such partition after %v", dev.UpperPartLabel, wait)
		}
		if err != nil {
			return rootResult{}, refusef("development upper partition %q: %v", dev.UpperPartLabel, err)
		}
		if err := b.mountUpper(parts[0], dev); err != nil {
			return rootResult{}, err
		}
		upperDesc = "partition:" + dev.UpperPartLabel
		mroot.Upper, mroot.UpperLabel = "partition", dev.UpperPartLabel
	} else if err := rootfs.MountTmpfs(upperFS); err != nil {
		return rootResult{}, refusef("%v", err)
	}
	if err := rootfs.Overlay(lowerDir, upperFS, newRoot); err != nil {
		return rootResult{}, refusef("%v", err)
	}
	_ = os.Symlink("upperfs/upper", upperDir)
	b.log.Printf("root: overlay, lower %s (%s), upper %s", lowerDev, lowerDesc, upperDesc)
	return rootResult{
		description: fmt.Sprintf("overlay lower=%s upper=%s", lowerDesc, upperDesc),
		rootHash:    rootHash,
		event:       measure.RootEvent(mroot),
	}, nil
}

// upperProbe is how much of an upper partition must be zero before /init
// formats it: it covers the superblocks of every common filesystem and
// of LUKS, swap and partition tables.
const upperProbe = 1 << 20

// mountUpper mounts the persistent upper partition on upperFS. An ext4
// superblock is mounted as is (the kernel replays its journal; a mount
// failure is refused as damage); a partition whose first MiB is all zero
// is formatted when the policy sets create_upper; anything else is
// refused, never formatted.
func (b *boot) mountUpper(p rootfs.BlockPartition, dev policy.Development) error {
	name := fmt.Sprintf("%q (%s)", dev.UpperPartLabel, p.Dev)
	if fstype, err := rootfs.DetectFS(p.Dev); err == nil {
		if fstype != "ext4" {
			return refusef("development upper partition %s holds %s, not ext4", name, fstype)
		}
		if err := rootfs.MountReadWrite(p.Dev, upperFS); err != nil {
			return refusef("development upper partition %s is damaged: %v; repair it with e2fsck or wipe it", name, err)
		}
		return nil
	}
	f, err := os.OpenFile(p.Dev, os.O_RDWR|unix.O_EXCL, 0)
	if err != nil {
		return refusef("development upper partition %s: %v", name, err)
	}
	defer f.Close()
	blank, err := mkfs.Blank(f, upperProbe)
	if err != nil {
		return refusef("development upper partition %s: %v", name, err)
	}
	switch {
	case !blank:
		return refusef("development upper partition %s is damaged or not ext4: no ext4 superblock, and its first MiB holds data; not formatting it", name)
	case !dev.CreateUpper:
		return refusef("development upper partition %s is empty and the policy does not set create_upper", name)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return refusef("development upper partition %s: size: %v", name, err)
	}
	opt := mkfs.Ext2Options{UUID: upperUUID(p.UUID)}
	if len(dev.UpperPartLabel) <= 16 {
		opt.Label = dev.UpperPartLabel
	}
	start := time.Now()
	if err := mkfs.Ext2(f, size, opt); err != nil {
		return refusef("development upper partition %s: formatting: %v", name, err)
	}
	if err := f.Sync(); err != nil {
		return refusef("development upper partition %s: formatting: %v", name, err)
	}
	if err := f.Close(); err != nil {
		return refusef("development upper partition %s: formatting: %v", name, err)
	}
	b.log.Printf("development upper partition %s was empty: formatted ext2, %d MiB, in %v (create_upper)",
		name, size>>20, time.Since(start).Round(time.Millisecond))
	if err := rootfs.MountReadWrite(p.Dev, upperFS); err != nil {
		return refusef("development upper partition %s: mounting the new filesystem: %v", name, err)
	}
	return nil
}

// upperUUID derives the new filesystem's UUID from the partition's, so a
// format is reproducible and needs no entropy early in boot.
func upperUUID(part rootfs.GUID) [16]byte {
	h := sha256.Sum256(append([]byte("mcinit development upper\x00"), part[:]...))
	var u [16]byte
	copy(u[:], h[:16])
	u[6] = u[6]&0x0f | 0x50 // version 5 style: name-based
	u[8] = u[8]&0x3f | 0x80
	return u
}

// rootSwitch hands over to the real init.
func rootSwitch(root, init string, env []string) error {
	return rootfs.SwitchRoot(root, init, []string{init}, env)
}

// rescueShell runs the u-root shell on the console (development images
// only carry it), then returns.
func (b *boot) rescueShell(why string) {
	sh := "/bin/sh"
	if _, err := os.Stat(sh); err != nil {
		b.log.Warnf("no rescue shell in this image (%s)", why)
		return
	}
	b.log.Warnf("development rescue shell (%s); exit to continue", why)
	cmd := exec.Command(sh)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = []string{"PATH=/bbin:/bin", "PS1=mcinit-rescue# "}
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Run(); err != nil {
		b.log.Warnf("rescue shell: %v", err)
	}
}
