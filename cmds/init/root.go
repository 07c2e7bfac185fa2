package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/dmverity"
	"github.com/mcinit/mcinit/handoff"
	"github.com/mcinit/mcinit/measure"
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
		parts, err := rootfs.DefaultScanner().WaitFor(context.Background(), rootfs.Selector{Label: dev.UpperPartLabel})
		if err != nil {
			return rootResult{}, refusef("development upper partition %q: %v", dev.UpperPartLabel, err)
		}
		if err := rootfs.MountReadWrite(parts[0].Dev, upperFS); err != nil {
			return rootResult{}, refusef("development upper partition %q is damaged or unformatted: %v", dev.UpperPartLabel, err)
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
