package boot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"time"

	"github.com/mcinit/mcinit/cmdline"
	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/grantpart"
	"github.com/mcinit/mcinit/initramfs/layout"
	"github.com/mcinit/mcinit/internal/boundedfile"
	"github.com/mcinit/mcinit/measure"
	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/rootfs"
	"github.com/mcinit/mcinit/signing"
)

// Grant is a development grant that verified, and where it was read.
type Grant struct {
	*policy.Grant
	// Source is measure.GrantInInitramfs or measure.GrantInPartition.
	Source string
	// Where names it on the console: `initramfs grants/unit.toml`,
	// `partition /dev/vda3 "unit.toml"`.
	Where  string
	SHA256 [32]byte // of the grant document, as measured
}

// Grants are the verified grants, initramfs first, each document once.
type Grants []Grant

// Policy lists the grants for the decision.
func (gs Grants) Policy() []*policy.Grant {
	out := make([]*policy.Grant, len(gs))
	for i := range gs {
		out[i] = gs[i].Grant
	}
	return out
}

// Used is the grant that unlocked development in d, or nil.
func (gs Grants) Used(d *decide.Decision) *Grant {
	if d == nil || d.Grant == nil {
		return nil
	}
	for i := range gs {
		if gs[i].Grant == d.Grant {
			return &gs[i]
		}
	}
	return nil
}

// Limits on the grants /init reads.
const (
	maxImageGrants = 64
	// maxGrantPartitions bounds how many partitions named mcinit-grants
	// are read (a unit normally has one; a plugged-in disk may add more).
	maxGrantPartitions = 4
)

// ReadGrants verifies the image's development grants (grants/*.toml, each
// with its .sig); bad ones are warnings, never refusals.
func ReadGrants(image fs.FS, keys *signing.KeySet, con *Console) Grants {
	names, err := fs.Glob(image, path.Join(layout.GrantsDir, "*.toml"))
	if err != nil {
		con.Warn("grants: %v", err)
		return nil
	}
	sort.Strings(names)
	if len(names) > maxImageGrants {
		con.Warn("grants: %d files in the initramfs, only the first %d are read", len(names), maxImageGrants)
		names = names[:maxImageGrants]
	}
	var gs Grants
	for _, n := range names {
		where := "initramfs " + n
		doc, err := boundedfile.Read(image, n, policy.MaxGrantSize)
		if err == nil {
			var sig []byte
			if sig, err = boundedfile.Read(image, n+".sig", signing.MaxSignatureFile); err == nil {
				gs = gs.add(con, keys, measure.GrantInInitramfs, where, doc, sig)
				continue
			}
		}
		con.Warn("grant ignored: %s: %v", where, err)
	}
	return gs
}

// add verifies one grant, exactly as every grant is verified (the
// policy's key set and threshold), and appends it unless it is a copy
// of one already read. Every grant that is left out gets one console
// line naming it and why.
func (gs Grants) add(con *Console, keys *signing.KeySet, source, where string, doc, sig []byte) Grants {
	g, err := policy.VerifyGrant(doc, sig, keys)
	if err != nil {
		con.Warn("grant ignored: %s: %v", where, err)
		return gs
	}
	sum := sha256.Sum256(doc)
	for _, o := range gs {
		if o.SHA256 == sum {
			con.Printf("grant %s: the same grant as %s, read once", where, o.Where)
			return gs
		}
	}
	con.Printf("grant %s: %s, verified", where, g)
	return append(gs, Grant{Grant: g, Source: source, Where: where, SHA256: sum})
}

// WantsDiskGrants says whether the disk's grants can matter to this boot:
// only when development is requested and the policy honours grants. A
// production boot never reads the grants partition, so nothing on it can
// delay or disturb one.
func WantsDiskGrants(p *policy.Policy, cl *cmdline.Cmdline) bool {
	return p != nil && p.Development.AllowGrants && cl != nil && cl.Flags().Profile == cmdline.ProfileDevelopment
}

// ReadDiskGrants adds the grants of the partitions named mcinit-grants
// (package grantpart: a raw container, no filesystem) to gs. The disk is
// untrusted: a partition that cannot be read or parsed, and any grant in
// it that does not verify, is left out with one console line; nothing
// here refuses the boot. wait bounds the wait for the disk (RootWait):
// the scan ends as soon as a grants partition or one of the policy's
// roots is present.
func ReadDiskGrants(disks Disks, con *Console, keys *signing.KeySet, pol *policy.Policy, gs Grants, wait time.Duration) Grants {
	parts, err := grantPartitions(disks, pol, wait)
	if err != nil {
		con.Warn("grants partition: %v", err)
		return gs
	}
	if len(parts) == 0 {
		con.Printf("grants partition: none")
		return gs
	}
	if len(parts) > maxGrantPartitions {
		con.Warn("grants partition: %d partitions named %s, only the first %d are read", len(parts), grantpart.Label, maxGrantPartitions)
		parts = parts[:maxGrantPartitions]
	}
	for _, p := range parts {
		raw, err := disks.ReadPartition(p, grantpart.MaxSize)
		if err != nil {
			con.Warn("grants partition %s ignored: reading it: %v", p.Dev, err)
			continue
		}
		es, err := grantpart.Parse(raw)
		if errors.Is(err, grantpart.ErrBlank) {
			con.Printf("grants partition %s: %v", p.Dev, err)
			continue
		}
		if err != nil {
			con.Warn("grants partition %s ignored: %v", p.Dev, err)
			continue
		}
		con.Printf("grants partition %s: %d grant(s)", p.Dev, len(es))
		for _, e := range es {
			gs = gs.add(con, keys, measure.GrantInPartition, fmt.Sprintf("partition %s %q", p.Dev, e.Name), e.Grant, e.Sig)
		}
	}
	return gs
}

// grantPartitions polls until a partition named mcinit-grants or one of
// the policy's roots appears (then the disk has been scanned), or wait
// passes, and returns the grants partitions in device order.
func grantPartitions(disks Disks, pol *policy.Policy, wait time.Duration) ([]rootfs.BlockPartition, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for {
		parts, err := disks.Partitions()
		if err == nil {
			var hits []rootfs.BlockPartition
			for _, p := range parts {
				if p.Label == grantpart.Label {
					hits = append(hits, p)
				}
			}
			if len(hits) > 0 {
				sort.Slice(hits, func(i, j int) bool { return hits[i].Dev < hits[j].Dev })
				return hits, nil
			}
			for _, r := range pol.Production.Roots {
				if _, _, err := selectVerity(r, parts); err == nil {
					return nil, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return nil, err
			}
			return nil, nil
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// ExplainGrants says, for a development request that was denied, why
// each verified grant did not apply: one line per grant.
func ExplainGrants(con *Console, gs Grants, d *decide.Decision, allowGrants bool, now time.Time) {
	if d == nil || d.Reason != decide.ReasonDevDenied {
		return
	}
	if len(gs) > 0 && !allowGrants {
		con.Warn("grants ignored: the policy does not set development.allow_grants")
		return
	}
	for _, g := range gs {
		var why string
		switch {
		case g.Board != d.Board || g.DeviceID != d.DeviceID:
			why = fmt.Sprintf("it is for board %s device %q, this is board %s device %q", g.Board, g.DeviceID, d.Board, d.DeviceID)
		case !g.Matches(d.Board, d.DeviceID, d.PolicyVersion):
			why = fmt.Sprintf("policy version %d is outside its range", d.PolicyVersion)
		case !g.ValidAt(now):
			why = "its not_after has passed, or the clock was never set"
		default:
			continue
		}
		con.Warn("grant ignored: %s: %s", g.Where, why)
	}
}

// GrantRef is what the grant event measures.
type GrantRef struct {
	SHA256 string // lowercase hex
	Source string // measure.GrantInInitramfs or GrantInPartition
}

// Ref is the grant's measured reference.
func (g *Grant) Ref() GrantRef {
	return GrantRef{SHA256: hex.EncodeToString(g.SHA256[:]), Source: g.Source}
}

// GrantEvent measures the grant that unlocked development.
func GrantEvent(r GrantRef) measure.Event { return measure.GrantEvent(r.SHA256, r.Source) }
