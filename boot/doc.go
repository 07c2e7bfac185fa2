// Package boot is /init's pipeline as functions with explicit inputs and
// outputs over an environment (Env): the initramfs as an fs.FS, the
// command-line text, the board identity, block devices and a TPM transport.
// cmds/init wires the real environment (package osenv) and calls the stages
// in order; tests wire fakes and the TPM simulator; `mcinit predict` calls
// the same decision and event builder (Facts) with the facts given instead
// of read.
//
// The stages, in boot order:
//
//	ReadCmdline → Identify → MatchBoard → LoadModules → ReadPolicy →
//	OpenMeasurement (policy and key-set events) → ReadFloor → ReadGrants
//	(and ReadDiskGrants, for a development request) → board event →
//	Decide → decision event (and grant event) → SetupRoot → root event →
//	FindInit → SettleFloor → separator event → WriteHandoff → LockModules →
//	RequestedShell (development, mcinit.shell) → switch_root
//
// Every stage error is a refusal: its text is the cause printed after
// "mcinit: refusing to boot: " and measured as the failure event; then
// RefusalShell (development with rescue_shell only) and a halt. RunShell
// bounds both shells by the policy's rescue_timeout.
package boot
