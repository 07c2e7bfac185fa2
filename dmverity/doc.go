// Package dmverity opens a dm-verity device in the booted initramfs from a
// root hash the signed policy supplies. Everything on the disks is
// untrusted: the veritysetup superblock is parsed strictly and must agree
// with the policy, the devices must be large enough, and the top of the
// tree is checked against the root hash in userspace before the kernel is
// given the table, so a wrong root hash is a clear refusal rather than a
// corruption event (which may reboot the machine). Linux only.
package dmverity
