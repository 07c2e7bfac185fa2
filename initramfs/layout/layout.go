// Package layout names the paths inside mcinit's initramfs. It is shared by
// the builder (host) and /init, and deliberately imports nothing, so /init
// does not link the builder's dependencies.
package layout

// Paths inside the image, relative to its root.
const (
	ConfigDir  = "etc/mcinit"
	PolicyFile = ConfigDir + "/policy.toml"
	SigFile    = ConfigDir + "/policy.toml.sig"
	KeysDir    = ConfigDir + "/keys"
	BoardsDir  = ConfigDir + "/boards"
	GrantsDir  = ConfigDir + "/grants"
	ModulesDir = "lib/modules"
)
