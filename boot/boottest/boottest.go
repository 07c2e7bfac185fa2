// Package boottest runs /init's pipeline without a kernel: an initramfs
// image as an fstest.MapFS, fake block devices, and the go-tpm simulator
// behind a transport that can fail chosen commands.
package boottest

import (
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/mcinit/mcinit/boards"
	"github.com/mcinit/mcinit/boot"
	"github.com/mcinit/mcinit/dmverity"
	"github.com/mcinit/mcinit/handoff"
	"github.com/mcinit/mcinit/identity"
	"github.com/mcinit/mcinit/initramfs/layout"
	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/rootfs"
	"github.com/mcinit/mcinit/signing"
)

// Image is an initramfs: the shipped board files, one trusted Ed25519
// key (threshold 1) and whatever policy, signature and grants a test puts in.
type Image struct {
	FS  fstest.MapFS
	Key crypto.Signer
}

// NewImage returns an image with the shipped boards and a trusted key,
// and, when policyTOML is not empty, that policy signed by the key.
func NewImage(t testing.TB, policyTOML string) *Image {
	t.Helper()
	k, err := signing.GenerateKey(signing.AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signing.PublicKeyFrom(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	pemb, err := pub.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	im := &Image{FS: fstest.MapFS{}, Key: k}
	im.FS[layout.KeysDir+"/release.pem"] = &fstest.MapFile{Data: pemb, Mode: 0o644}
	im.FS[layout.KeysDir+"/keyset.toml"] = &fstest.MapFile{Data: []byte("threshold = 1\n"), Mode: 0o644}
	err = fs.WalkDir(boards.ShippedFS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".toml") {
			return err
		}
		b, err := fs.ReadFile(boards.ShippedFS(), p)
		im.FS[layout.BoardsDir+"/"+path.Base(p)] = &fstest.MapFile{Data: b, Mode: 0o644}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if policyTOML != "" {
		im.Sign(t, layout.PolicyFile, []byte(policyTOML))
	}
	return im
}

// Sign puts doc at name and its signature by the image's key at name.sig.
func (im *Image) Sign(t testing.TB, name string, doc []byte) {
	t.Helper()
	sig, err := signing.Sign(im.Key, doc)
	if err != nil {
		t.Fatal(err)
	}
	im.FS[name] = &fstest.MapFile{Data: doc, Mode: 0o644}
	im.FS[name+".sig"] = &fstest.MapFile{Data: signing.FormatSignatures([]signing.Signature{sig}), Mode: 0o644}
}

// Disk is one fake root image: its data and hash partitions, named by the
// Discoverable Partitions rule from the root hash, as `mcinit image` does.
type Disk struct {
	RootHash string // hex; the tree the data partition really holds
}

// Partitions are the disk's data (/dev/vda1) and hash (/dev/vda2) partitions.
func (d Disk) Partitions(t testing.TB, first int) []rootfs.BlockPartition {
	t.Helper()
	du, hu, err := rootfs.VerityUUIDs(d.RootHash)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := rootfs.RootType(runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	vt, err := rootfs.VerityType(runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	return []rootfs.BlockPartition{
		{Partition: rootfs.Partition{Number: first, Type: rt, UUID: du}, Disk: "vda", Dev: fmt.Sprintf("/dev/vda%d", first)},
		{Partition: rootfs.Partition{Number: first + 1, Type: vt, UUID: hu}, Disk: "vda", Dev: fmt.Sprintf("/dev/vda%d", first+1)},
	}
}

// Env is a fake boot.Env. Set the inputs, run the pipeline, read the
// recorded actions.
type Env struct {
	Files    fs.FS
	Line     string
	ID       identity.Identity
	IDErr    error
	TPM      transport.TPMCloser // nil: no TPM
	Parts    []rootfs.BlockPartition
	Trees    map[string]string // data partition → root hash of the tree it holds
	InitPath string            // what FindInit resolves /sbin/init to; "" = missing
	Banks    []crypto.Hash     // what the kernel lists in sysfs; nil: ask the TPM
	Raw      map[string][]byte // partition device → its raw bytes (ReadPartition)
	// Shell is the rescue shell StartShell runs; nil: the image has none.
	Shell *Shell

	// TPMAfterModules: the TPM's driver is a board module, so OpenTPM
	// fails until LoadModules has run; LoadModules then waits for the
	// pipeline's first OpenTPM, so the TPM is missing when first looked for.
	TPMAfterModules bool
	// ModulesErr is what LoadModules returns.
	ModulesErr error

	mu       sync.Mutex
	loaded   bool          // LoadModules ran
	looked   chan struct{} // closed at the first OpenTPM (TPMAfterModules)
	lookOnce sync.Once
	Actions  []string // what the pipeline did, in order ("modules ...", "verity ...", "mount ...")
	Summary  *handoff.Summary
	EventLog []byte
	Switched string
}

var _ boot.Env = (*Env)(nil)

func (e *Env) act(format string, a ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.Actions = append(e.Actions, fmt.Sprintf(format, a...))
}

func (e *Env) Image() fs.FS             { return e.Files }
func (e *Env) Cmdline() (string, error) { return e.Line, nil }
func (e *Env) Identity() (identity.Identity, error) {
	return e.ID, e.IDErr
}

func (e *Env) LoadModules(mods []boards.Module) error {
	var names []string
	for _, m := range mods {
		names = append(names, m.Name)
	}
	if e.TPMAfterModules {
		select {
		case <-e.lookedFor():
		case <-time.After(10 * time.Second): // the pipeline never looked
		}
	}
	e.act("modules %s", strings.Join(names, ","))
	e.mu.Lock()
	e.loaded = true
	e.mu.Unlock()
	return e.ModulesErr
}

func (e *Env) lookedFor() chan struct{} {
	e.lookOnce.Do(func() { e.looked = make(chan struct{}) })
	return e.looked
}

func (e *Env) OpenTPM() (transport.TPMCloser, error) {
	if e.TPMAfterModules {
		defer func() {
			ch := e.lookedFor()
			select {
			case <-ch:
			default:
				close(ch)
			}
		}()
	}
	e.mu.Lock()
	loaded := e.loaded
	e.mu.Unlock()
	if e.TPM == nil || (e.TPMAfterModules && !loaded) {
		return nil, errors.New("no TPM: open /dev/tpmrm0: no such file or directory")
	}
	return &handle{tpm: e.TPM}, nil
}

// handle is the pipeline's open TPM: after Close it fails every command,
// as a closed /dev/tpm0 does, while the test keeps the simulator open.
type handle struct {
	mu     sync.Mutex
	tpm    transport.TPM
	closed bool
}

func (h *handle) Send(cmd []byte) ([]byte, error) {
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return nil, errors.New("TPM device closed")
	}
	return h.tpm.Send(cmd)
}

func (h *handle) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	return nil
}

func (e *Env) PCRBanks(pcr int) ([]crypto.Hash, error) {
	if e.Banks == nil {
		return nil, errors.New("no PCR banks in sysfs")
	}
	return e.Banks, nil
}

func (e *Env) Disks() boot.Disks { return disks{e} }

func (e *Env) FindInit(root, init string) (string, error) {
	if e.InitPath == "" {
		return "", fmt.Errorf("no executable %s in the new root: no such file or directory", init)
	}
	e.act("init %s", e.InitPath)
	return e.InitPath, nil
}

func (e *Env) WriteHandoff(s handoff.Summary, eventLog []byte) error {
	e.Summary, e.EventLog = &s, eventLog
	e.act("handoff %s", s.Profile)
	return nil
}

func (e *Env) LockModules() error { e.act("lock-modules"); return nil }

func (e *Env) SwitchRoot(root, initPath, argv0 string, env []string) error {
	e.Switched = initPath
	e.act("switch %s %s", root, initPath)
	return nil
}

func (e *Env) StartShell() (boot.Shell, error) {
	if e.Shell == nil {
		return nil, boot.ErrNoShell
	}
	if err := e.Shell.start(); err != nil {
		return nil, err
	}
	e.act("shell")
	return e.Shell, nil
}

// Shell is a fake rescue shell: the operator leaves it after ExitAfter
// (0: nobody ever does), or it dies when killed. Ignore makes it survive
// the kill, as a process that escaped its session would.
type Shell struct {
	ExitAfter time.Duration
	ExitErr   error // what Wait returns when the operator leaves
	StartErr  error
	Ignore    bool
	OnStart   func() // called as the shell starts

	mu      sync.Mutex
	started bool
	killed  chan struct{}
	Kills   int
}

func (s *Shell) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.StartErr != nil {
		return s.StartErr
	}
	if s.started {
		return errors.New("boottest: the shell was started twice")
	}
	s.started, s.killed = true, make(chan struct{})
	if s.OnStart != nil {
		s.OnStart()
	}
	return nil
}

// Started reports whether the pipeline started the shell.
func (s *Shell) Started() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

func (s *Shell) Wait() error {
	var exit <-chan time.Time
	if s.ExitAfter > 0 {
		exit = time.After(s.ExitAfter)
	}
	select {
	case <-exit:
		return s.ExitErr
	case <-s.killed:
		return errors.New("signal: killed")
	}
}

func (s *Shell) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Kills++
	if !s.Ignore && s.Kills == 1 {
		close(s.killed)
	}
	return nil
}

type disks struct{ e *Env }

func (d disks) Partitions() ([]rootfs.BlockPartition, error) { return d.e.Parts, nil }

func (d disks) ReadPartition(p rootfs.BlockPartition, limit int) ([]byte, error) {
	b, ok := d.e.Raw[p.Dev]
	if !ok {
		return nil, fmt.Errorf("open %s: no such device", p.Dev)
	}
	d.e.act("read %s", p.Dev)
	return b[:min(len(b), limit)], nil
}

func (d disks) OpenVerity(name, data, hash string, want dmverity.Expected, on dmverity.OnCorruption) (string, error) {
	have := d.e.Trees[data]
	if have != hex.EncodeToString(want.RootHash) {
		return "", fmt.Errorf("root hash mismatch: the policy's root hash %x does not match the tree on %s", want.RootHash, data)
	}
	d.e.act("verity %s %s", data, hash)
	return "/dev/mapper/" + name, nil
}

func (d disks) MountReadOnly(dev, target string) (string, error) {
	d.e.act("mount-ro %s %s", dev, target)
	return "erofs", nil
}

func (d disks) MountTmpfs(target string) error { d.e.act("tmpfs %s", target); return nil }

func (d disks) MountUpper(p rootfs.BlockPartition, dev policy.Development, target string) error {
	d.e.act("upper %s %s", p.Dev, target)
	return nil
}

func (d disks) Overlay(lower, upperBase, target string) error {
	d.e.act("overlay %s %s %s", lower, upperBase, target)
	return nil
}

// Logger collects console lines.
type Logger struct {
	mu    sync.Mutex
	Lines []string
}

func (l *Logger) add(prefix, format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.Lines = append(l.Lines, prefix+fmt.Sprintf(format, a...))
}

func (l *Logger) Printf(format string, a ...any) { l.add("mcinit: ", format, a...) }
func (l *Logger) Warnf(format string, a ...any)  { l.add("mcinit: ", format, a...) }
func (l *Logger) Critf(format string, a ...any)  { l.add("mcinit: ", format, a...) }
func (l *Logger) Debugf(format string, a ...any) {}
func (l *Logger) SetDebug(bool)                  {}

// FaultTPM passes commands to a TPM, counts them by command code, and
// fails the FailAt-th command whose code is FailCC (1-based; 0: never).
type FaultTPM struct {
	transport.TPM
	FailCC uint32
	FailAt int

	mu     sync.Mutex
	Counts map[uint32]int
}

// Command codes the pipeline sends.
const (
	CCPCRExtend    = 0x00000182
	CCNVReadPublic = 0x00000169
	CCNVRead       = 0x0000014E
	CCNVWrite      = 0x00000137
	CCNVWriteLock  = 0x00000138
	CCGetCap       = 0x0000017A
)

// ErrInjected is the failure FaultTPM returns.
var ErrInjected = errors.New("injected TPM failure")

func (f *FaultTPM) Send(cmd []byte) ([]byte, error) {
	f.mu.Lock()
	if f.Counts == nil {
		f.Counts = map[uint32]int{}
	}
	var cc uint32
	if len(cmd) >= 10 {
		cc = uint32(cmd[6])<<24 | uint32(cmd[7])<<16 | uint32(cmd[8])<<8 | uint32(cmd[9])
	}
	f.Counts[cc]++
	fail := f.FailAt > 0 && cc == f.FailCC && f.Counts[cc] == f.FailAt
	f.mu.Unlock()
	if fail {
		return nil, ErrInjected
	}
	return f.TPM.Send(cmd)
}

// Count is the number of commands sent with code cc.
func (f *FaultTPM) Count(cc uint32) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Counts[cc]
}

// Total is the number of commands sent.
func (f *FaultTPM) Total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.Counts {
		n += c
	}
	return n
}

// Close is a no-op: the test owns the TPM.
func (f *FaultTPM) Close() error { return nil }
