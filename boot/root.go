package boot

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/mcinit/mcinit/boards"
	"github.com/mcinit/mcinit/cmdline"
	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/dmverity"
	"github.com/mcinit/mcinit/handoff"
	"github.com/mcinit/mcinit/measure"
	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/rootfs"
)

// Where the root is assembled.
const (
	NewRoot  = "/newroot"
	LowerDir = handoff.Lower   // the development image, read-only
	UpperFS  = handoff.UpperFS // tmpfs or the persistent partition
	dmName   = "mcinit-root"
	// DefaultRootWait bounds the wait for the root disk when the board
	// says nothing.
	DefaultRootWait = 10 * time.Second
)

// RootWait is how long the board's root disk may take to appear.
func RootWait(b *boards.Board) time.Duration {
	if b.Quirks.RootWait > 0 {
		return time.Duration(b.Quirks.RootWait) * time.Second
	}
	return DefaultRootWait
}

// Root is the root that was set up.
type Root struct {
	Description string // for the console and the summary
	RootHash    string
	Measured    measure.Root
}

// RootFor is what a root selected by the decision measures, with r the
// accepted root image that was found. /init and predict share it.
func RootFor(d decide.Facts, dev policy.Development, r policy.Root) measure.Root {
	if d.Profile == decide.Production {
		return measure.Root{Kind: measure.RootVerity, RootHash: r.RootHash}
	}
	m := measure.Root{Kind: measure.RootOverlay, Upper: "tmpfs"}
	if dev.VerifiesLower() {
		m.RootHash = r.RootHash
	}
	if dev.Upper == "partition" {
		m.Upper, m.UpperLabel = "partition", dev.UpperPartLabel
	}
	return m
}

// RootSetup is the input of SetupRoot.
type RootSetup struct {
	Policy   *policy.Policy
	Decision *decide.Decision
	Cmdline  *cmdline.Cmdline
	Wait     time.Duration // RootWait(board)
}

// SetupRoot mounts the root the decision selected on NewRoot: production,
// the first accepted root (policy order) through dm-verity, read-only;
// development, an overlay of the image (verity-checked unless the policy
// says otherwise) and a tmpfs or persistent upper.
func SetupRoot(disks Disks, con *Console, in RootSetup) (*Root, error) {
	pol := in.Policy
	for _, name := range []string{"root", "roothash", "systemd.verity_root_data", "systemd.verity_root_hash"} {
		for _, p := range in.Cmdline.Lookup(name) {
			con.Warn("ignoring %s=%s from the command line: the root comes from the signed policy", name, p.Value)
		}
	}
	if in.Decision.Profile == decide.Production {
		dev, root, err := openVerity(disks, pol, in.Wait)
		if err != nil {
			return nil, err
		}
		fstype, err := disks.MountReadOnly(dev, NewRoot)
		if err != nil {
			return nil, fmt.Errorf("mounting the verified root: %v", err)
		}
		con.Printf("root: %s (%s, read-only, dm-verity %s)", dev, fstype, root.RootHash[:16])
		return &Root{
			Description: fmt.Sprintf("verity:%s %s ro", root.Name, fstype),
			RootHash:    root.RootHash,
			Measured:    RootFor(in.Decision.Facts, pol.Development, root),
		}, nil
	}
	return developmentRoot(disks, con, in)
}

// openVerity finds the first accepted root (policy order) whose data and
// hash partitions are present and opens it with the policy's root hash.
func openVerity(disks Disks, pol *policy.Policy, wait time.Duration) (string, policy.Root, error) {
	if len(pol.Production.Roots) == 0 {
		return "", policy.Root{}, errors.New("policy lists no production root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var lastErr error
	for {
		parts, err := disks.Partitions()
		if err != nil {
			lastErr = err
		}
		for _, r := range pol.Production.Roots {
			data, hash, err := selectVerity(r, parts)
			if err == nil {
				want, err := dmverity.ParseExpected(r.RootHash, r.HashAlgorithm, r.Salt, r.DataBlocks)
				if err != nil {
					return "", r, fmt.Errorf("root %q: policy root %q: %v", r.Name, r.Name, err)
				}
				dev, err := disks.OpenVerity(dmName, data.Dev, hash.Dev, want, dmverity.OnCorruption(pol.Production.VerityError))
				if err != nil {
					return "", r, fmt.Errorf("opening dm-verity root %q on %s: %v", r.Name, data.Dev, err)
				}
				return dev, r, nil
			}
			if !errors.Is(err, rootfs.ErrNotFound) {
				return "", r, fmt.Errorf("root %q: %v", r.Name, err)
			}
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return "", policy.Root{}, fmt.Errorf("no accepted root image found after %v: %v", wait, lastErr)
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

// developmentRoot mounts the image as the overlay's lower and tmpfs or a
// persistent partition as its upper.
func developmentRoot(disks Disks, con *Console, in RootSetup) (*Root, error) {
	pol := in.Policy
	dev := pol.Development
	var lowerDev, lowerDesc string
	var root policy.Root
	if dev.VerifiesLower() {
		d, r, err := openVerity(disks, pol, in.Wait)
		if err != nil {
			return nil, err
		}
		lowerDev, root, lowerDesc = d, r, "verity:"+r.Name
	} else {
		// Unverified lower: the first accepted root's data partition.
		parts, err := disks.Partitions()
		if err != nil {
			return nil, err
		}
		var found bool
		for _, r := range pol.Production.Roots {
			if d, _, err := selectVerity(r, parts); err == nil {
				lowerDev, root, lowerDesc, found = d.Dev, r, "unverified:"+r.Name, true
				break
			}
		}
		if !found {
			return nil, errors.New("no root image found for the development lower")
		}
	}
	if _, err := disks.MountReadOnly(lowerDev, LowerDir); err != nil {
		return nil, fmt.Errorf("mounting the development lower: %v", err)
	}
	upperDesc := "tmpfs"
	if dev.Upper == "partition" {
		// Bounded like the root: a missing partition must refuse, not hang.
		p, err := waitFor(disks, rootfs.Selector{Label: dev.UpperPartLabel}, in.Wait)
		if errors.Is(err, rootfs.ErrNotFound) {
			return nil, fmt.Errorf("development upper partition %q: no such partition after %v", dev.UpperPartLabel, in.Wait)
		}
		if err != nil {
			return nil, fmt.Errorf("development upper partition %q: %v", dev.UpperPartLabel, err)
		}
		if err := disks.MountUpper(p, dev, UpperFS); err != nil {
			return nil, err
		}
		upperDesc = "partition:" + dev.UpperPartLabel
	} else if err := disks.MountTmpfs(UpperFS); err != nil {
		return nil, err
	}
	if err := disks.Overlay(LowerDir, UpperFS, NewRoot); err != nil {
		return nil, err
	}
	con.Printf("root: overlay, lower %s (%s), upper %s", lowerDev, lowerDesc, upperDesc)
	r := &Root{
		Description: fmt.Sprintf("overlay lower=%s upper=%s", lowerDesc, upperDesc),
		RootHash:    root.RootHash,
		Measured:    RootFor(in.Decision.Facts, dev, root),
	}
	return r, nil
}

// waitFor polls the partitions until sel matches one or wait passes.
func waitFor(disks Disks, sel rootfs.Selector, wait time.Duration) (rootfs.BlockPartition, error) {
	deadline := time.Now().Add(wait)
	for {
		parts, err := disks.Partitions()
		if err == nil {
			p, ferr := rootfs.Find(parts, sel)
			if ferr == nil || !errors.Is(ferr, rootfs.ErrNotFound) || !time.Now().Before(deadline) {
				return p, ferr
			}
		} else if !time.Now().Before(deadline) {
			return rootfs.BlockPartition{}, err
		}
		time.Sleep(25 * time.Millisecond)
	}
}
